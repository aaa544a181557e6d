package queue

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrDrained is returned by Memory.Receive once the queue is closed, empty,
// and holds no message that could still come back.
var ErrDrained = errors.New("queue drained")

// Memory is an in-process queue with SQS's delivery semantics: a received
// message is hidden until it is deleted or its visibility runs out, and then
// delivered again. Send blocks while the queue holds Capacity messages, which
// keeps a planner's memory bounded. Safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever the queue changes
	ready    []*memMsg
	inFlight map[string]*memMsg
	capacity int
	closed   bool
	nextID   int
	// MaxReceives moves a message that was received this often without
	// being deleted to the dead letters instead of delivering it again, like
	// an SQS redrive policy. 0 keeps redelivering.
	MaxReceives int
	dead        [][]byte
}

type memMsg struct {
	id       string
	body     []byte
	receives int
	timer    *time.Timer
}

// NewMemory returns an empty queue holding at most capacity messages.
func NewMemory(capacity int) *Memory {
	return &Memory{changed: make(chan struct{}), inFlight: map[string]*memMsg{}, capacity: max(capacity, 1)}
}

// notify wakes every waiter; the caller holds mu.
func (q *Memory) notify() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Send adds msgs, waiting for room. It fails once the queue is closed.
func (q *Memory) Send(ctx context.Context, msgs []Outgoing) error {
	for _, m := range msgs {
		for {
			q.mu.Lock()
			if q.closed {
				q.mu.Unlock()
				return errors.New("send to a closed queue")
			}
			if len(q.ready)+len(q.inFlight) < q.capacity {
				q.nextID++
				q.ready = append(q.ready, &memMsg{id: strconv.Itoa(q.nextID), body: m.Body})
				q.notify()
				q.mu.Unlock()
				break
			}
			wait := q.changed
			q.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// Close tells receivers that nothing more will be sent.
func (q *Memory) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.notify()
}

// Receive returns up to n ready messages, waiting up to wait for the first,
// and hides them for visibility. It returns ErrDrained when nothing is left.
func (q *Memory) Receive(ctx context.Context, n int, wait, visibility time.Duration) ([]Message, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		q.mu.Lock()
		if msgs := q.take(n, visibility); len(msgs) > 0 {
			q.mu.Unlock()
			return msgs, nil
		}
		if q.closed && len(q.inFlight) == 0 {
			q.mu.Unlock()
			return nil, ErrDrained
		}
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take moves up to n ready messages in flight; the caller holds mu.
func (q *Memory) take(n int, visibility time.Duration) []Message {
	q.reapDead()
	n = min(max(n, 1), len(q.ready))
	if n == 0 {
		return nil
	}
	msgs := make([]Message, 0, n)
	for _, m := range q.ready[:n] {
		m.receives++
		q.inFlight[m.id] = m
		m.timer = time.AfterFunc(visibility, func() { q.expire(m) })
		msgs = append(msgs, Message{ID: m.id, Body: m.body, Receives: m.receives, handle: m.handle()})
	}
	q.ready = append(q.ready[:0], q.ready[n:]...)
	q.notify()
	return msgs
}

// reapDead moves ready messages past MaxReceives to the dead letters; the
// caller holds mu.
func (q *Memory) reapDead() {
	if q.MaxReceives <= 0 {
		return
	}
	live := q.ready[:0]
	for _, m := range q.ready {
		if m.receives >= q.MaxReceives {
			q.dead = append(q.dead, m.body)
			continue
		}
		live = append(live, m)
	}
	q.ready = live
}

// Dead returns the bodies of the dead-lettered messages.
func (q *Memory) Dead() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.dead)
}

// handle names one receipt of m, so a stale receipt cannot touch a later one.
func (m *memMsg) handle() string { return m.id + "#" + strconv.Itoa(m.receives) }

// lookup returns the in-flight message a receipt handle names; the caller holds mu.
func (q *Memory) lookup(handle string) (*memMsg, bool) {
	id, _, _ := strings.Cut(handle, "#")
	m, ok := q.inFlight[id]
	if !ok || m.handle() != handle {
		return nil, false
	}
	return m, true
}

// expire makes an in-flight message ready again.
func (q *Memory) expire(m *memMsg) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(m)
}

func (q *Memory) expireLocked(m *memMsg) {
	if q.inFlight[m.id] != m {
		return
	}
	delete(q.inFlight, m.id)
	q.ready = append(q.ready, m)
	q.notify()
}

// Delete acknowledges msgs.
func (q *Memory) Delete(_ context.Context, msgs []Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, msg := range msgs {
		if m, ok := q.lookup(msg.handle); ok {
			m.timer.Stop()
			delete(q.inFlight, m.id)
		}
	}
	q.notify()
	return nil
}

// ChangeVisibility hides msgs for d from now; d == 0 makes them ready at once.
func (q *Memory) ChangeVisibility(_ context.Context, msgs []Message, d time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, msg := range msgs {
		m, ok := q.lookup(msg.handle)
		if !ok {
			continue
		}
		m.timer.Stop()
		if d <= 0 {
			q.expireLocked(m)
			continue
		}
		m.timer = time.AfterFunc(d, func() { q.expire(m) })
	}
	return nil
}

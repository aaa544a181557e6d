package plan

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

// SendFunc sends up to ten message bodies to the work queue; nil means all
// of them were accepted. An error that has the method Accepted() []int
// (*queue.SendError) says which bodies, by index, the queue took anyway:
// those count as sent.
type SendFunc func(ctx context.Context, bodies [][]byte) error

// accepter is an error saying which bodies of a failed send were accepted.
type accepter interface{ Accepted() []int }

// Senders is how many SendMessageBatch calls a plan keeps in flight.
const Senders = 4

// Source produces what a plan enqueues: source objects to copy and
// destination objects to delete. It must close both channels when it
// returns.
type Source func(ctx context.Context, copies, deletes chan<- []listing.Object) error

// ListSource copies everything a listing finds.
func ListSource(l *listing.Lister) Source {
	return func(ctx context.Context, copies, deletes chan<- []listing.Object) error {
		close(deletes)
		return l.Run(ctx, copies)
	}
}

// SentFunc hears of every group of messages the queue accepted.
type SentFunc func(sent []Body)

// Enqueue runs src, groups what it produces into batches and sends them with
// send while src is still running; sent, when not nil, hears of each group
// of messages the queue accepted. It fills in sum and returns the first error
// of any stage; the plan is then incomplete. Memory stays bounded: each stage
// waits for the next through small channels.
func Enqueue(ctx context.Context, src Source, sum *Summary, opts Options, send SendFunc, sent SentFunc) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	copies := make(chan []listing.Object, 16)
	deletes := make(chan []listing.Object, 16)
	bodies := make(chan Body, 4*Senders*10)

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := src(ctx, copies, deletes); err != nil {
			cancel(err)
		}
	})
	var batchers sync.WaitGroup
	for op, in := range map[string]chan []listing.Object{OpCopy: copies, OpDelete: deletes} {
		batchers.Go(func() {
			if err := NewBatcher(sum, op, opts).Run(ctx, in, bodies); err != nil {
				cancel(err)
				for range in { // let the source finish its send and see ctx
				}
			}
		})
	}
	wg.Go(func() {
		batchers.Wait()
		close(bodies)
	})
	for range Senders {
		wg.Go(func() { sendAll(ctx, bodies, send, sent, cancel) })
	}
	wg.Wait()
	sum.Finished = time.Now()
	return context.Cause(ctx)
}

// sendTimeout bounds a send that goes on after the plan was stopped.
const sendTimeout = 30 * time.Second

// sendAll sends bodies as they come, up to ten per call when several are
// waiting. The first failure stops the whole plan through fail; it then
// keeps draining bodies so the stages before it can end. A send under way
// when the plan stops is not cut short: SQS may accept a canceled request,
// and a message sent but never heard of as sent would be planned again.
func sendAll(ctx context.Context, bodies <-chan Body, send SendFunc, sent SentFunc, fail context.CancelCauseFunc) {
	failed := false
	for body := range bodies {
		if failed {
			continue
		}
		batch := []Body{body}
	more:
		for len(batch) < 10 {
			select {
			case b, ok := <-bodies:
				if !ok {
					break more
				}
				batch = append(batch, b)
			default:
				break more
			}
		}
		data := make([][]byte, len(batch))
		for i, b := range batch {
			data[i] = b.Data
		}
		if ctx.Err() != nil {
			failed = true
			continue
		}
		sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		err := send(sendCtx, data)
		cancel()
		if err != nil {
			failed = true
			var acc accepter
			if errors.As(err, &acc) && sent != nil {
				var took []Body
				for _, i := range acc.Accepted() {
					if i >= 0 && i < len(batch) {
						took = append(took, batch[i])
					}
				}
				if len(took) > 0 {
					sent(took)
				}
			}
			fail(err)
			continue
		}
		if sent != nil {
			sent(batch)
		}
	}
}

package plan

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

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
// returns, and give up a send when ctx ends: once the plan stops, nothing
// reads them.
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
	copies := make(chan []listing.Object, 16)
	deletes := make(chan []listing.Object, 16)
	bodies := make(chan Body, 4*Senders*10)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return src(gctx, copies, deletes) })
	// Counts the batchers alone: the last one out closes bodies.
	var batchers sync.WaitGroup
	for op, in := range map[string]chan []listing.Object{OpCopy: copies, OpDelete: deletes} {
		batchers.Add(1)
		g.Go(func() error {
			defer batchers.Done()
			return NewBatcher(sum, op, opts).Run(gctx, in, bodies)
		})
	}
	g.Go(func() error {
		batchers.Wait()
		close(bodies)
		return nil
	})
	for range Senders {
		g.Go(func() error { return sendAll(gctx, bodies, send, sent) })
	}
	err := g.Wait()
	sum.Finished = time.Now()
	if err != nil {
		// gctx's cause rather than Wait's error: if ctx ended first, the
		// errors of the stages only echo that, and ctx's cause says why.
		return context.Cause(gctx)
	}
	return context.Cause(ctx)
}

// sendTimeout bounds a send that goes on after the plan was stopped.
const sendTimeout = 30 * time.Second

// sendAll sends bodies as they come, up to ten per call when several are
// waiting, until bodies is closed. It returns the first failure, or ctx's
// error once ctx ends. A send under way when the plan stops is not cut
// short: SQS may accept a canceled request, and a message sent but never
// heard of as sent would be planned again.
func sendAll(ctx context.Context, bodies <-chan Body, send SendFunc, sent SentFunc) error {
	for body := range bodies {
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
		if ctx.Err() != nil {
			return ctx.Err()
		}
		data := make([][]byte, len(batch))
		for i, b := range batch {
			data[i] = b.Data
		}
		sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		err := send(sendCtx, data)
		cancel()
		if err != nil {
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
			return err
		}
		if sent != nil {
			sent(batch)
		}
	}
	return nil
}

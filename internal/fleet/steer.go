package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"

	"github.com/s3clone/s3clone/internal/ledger"
)

// AutoScaling is the part of the Application Auto Scaling client that
// steering uses.
type AutoScaling interface {
	DescribeScalableTargets(ctx context.Context, in *applicationautoscaling.DescribeScalableTargetsInput, optFns ...func(*applicationautoscaling.Options)) (*applicationautoscaling.DescribeScalableTargetsOutput, error)
	RegisterScalableTarget(ctx context.Context, in *applicationautoscaling.RegisterScalableTargetInput, optFns ...func(*applicationautoscaling.Options)) (*applicationautoscaling.RegisterScalableTargetOutput, error)
}

var _ AutoScaling = (*applicationautoscaling.Client)(nil)

// ResourceID is the service as Application Auto Scaling names it:
// service/CLUSTER/SERVICE, with the cluster's name (not its ARN).
func (s Service) ResourceID() string {
	cluster := s.Cluster
	if i := strings.LastIndex(cluster, ":cluster/"); i >= 0 {
		cluster = cluster[i+len(":cluster/"):]
	}
	return "service/" + cluster + "/" + s.Name
}

// Steering is s3clone steering the worker service's size. Two steer the
// same service otherwise: the stack's backlog scaling (target tracking and
// a step policy, with Autoscaling=backlog) and s3clone (status
// --scale-ecs, cutover --scale-ecs, planner fleet). Target tracking would
// scale in what s3clone scaled out, and every scale-in stops workers with
// SIGTERM. So while s3clone steers, the service's dynamic scale-in is
// suspended (Application Auto Scaling's SuspendedState,
// DynamicScalingInSuspended): the policies may still add workers when the
// backlog grows, never remove them. A service without a scalable target
// (Autoscaling=off) has nothing to suspend: s3clone alone steers it.
//
// Which s3clone command holds the suspension is recorded in the run
// ledger (ledger.FleetHold), each write conditional on the hold read
// before it, so two commands cannot both believe they hold it. Only the
// holder sets the size (Owns). A command that takes a hold over (planner
// fleet, the cutover) gives it back to the one it took it from when it
// releases; status takes none over. Scale-in is resumed only by the one
// that suspended it, or by planner fleet --release (Resume).
type Steering struct {
	aas    AutoScaling
	svc    Service
	target *aastypes.ScalableTarget // nil: none registered
	holds  Holds                    // nil: nothing recorded (tests)

	holding       bool              // this steering holds the suspension
	suspendedByMe bool              // it found scale-in running and suspended it
	mine          ledger.FleetHold  // its hold, while holding
	etag          string            // of its hold as written
	previous      *ledger.FleetHold // the live hold it took over, given back on Release
}

// Holds is where holds are recorded: the run ledger. An etag of "" writes
// only where there is no hold yet.
type Holds interface {
	FleetHold(ctx context.Context, service string) (*ledger.FleetHold, string, error)
	PutFleetHold(ctx context.Context, h ledger.FleetHold, etag string) (string, error)
}

var _ Holds = (*ledger.Store)(nil)

// Holder names the command that steers, for its hold: "planner fleet",
// "planner cutover", "planner status". TakeOver: a hold found live becomes
// this one's until it releases (planner fleet, the cutover).
type Holder struct {
	Name     string
	TakeOver bool
	Holds    Holds // nil: nothing recorded
}

// ErrNoSuspend is wrapped by Steer's error when the caller may not change
// the scalable target.
var ErrNoSuspend = errors.New("cannot suspend the worker service's dynamic scale-in")

// Steer is Look, then Take.
func Steer(ctx context.Context, aas AutoScaling, svc Service, who Holder) (*Steering, error) {
	s, err := Look(ctx, aas, svc)
	if err != nil {
		return nil, err
	}
	return s, s.Take(ctx, who)
}

// Look reads svc's scalable target, if it has one, into a steering that
// holds nothing yet.
func Look(ctx context.Context, aas AutoScaling, svc Service) (*Steering, error) {
	out, err := aas.DescribeScalableTargets(ctx, &applicationautoscaling.DescribeScalableTargetsInput{
		ServiceNamespace:  aastypes.ServiceNamespaceEcs,
		ResourceIds:       []string{svc.ResourceID()},
		ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: describe its scalable target %s: %v (grant application-autoscaling:DescribeScalableTargets)", ErrNoSuspend, svc.ResourceID(), err)
	}
	s := &Steering{aas: aas, svc: svc}
	if len(out.ScalableTargets) > 0 {
		s.target = &out.ScalableTargets[0]
	}
	return s, nil
}

// Take takes the hold on the service's scale-in for who: when scale-in
// runs, it records the hold and suspends it; when another command holds
// it, it takes it over only if who.TakeOver; when it was suspended by
// hand, it leaves it (and may steer: nobody holds it). An error leaves
// the steering holding nothing.
func (s *Steering) Take(ctx context.Context, who Holder) error {
	if s.target == nil {
		return nil
	}
	s.holds = who.Holds
	host, _ := os.Hostname()
	s.mine = ledger.FleetHold{Service: s.svc.ResourceID(), Holder: who.Name, ID: ledger.NewHoldID(), Host: host, Since: time.Now().UTC()}
	suspended := s.target.SuspendedState != nil && aws.ToBool(s.target.SuspendedState.DynamicScalingInSuspended)
	var cur *ledger.FleetHold
	var etag string
	if s.holds != nil {
		var err error
		if cur, etag, err = s.holds.FleetHold(ctx, s.mine.Service); err != nil {
			return fmt.Errorf("read who holds %s: %w", s.mine.Service, err)
		}
	}
	live := cur != nil && cur.Released.IsZero()
	switch {
	case suspended && live && !who.TakeOver:
		return nil // another command holds it
	case suspended && !live && !who.TakeOver:
		return nil // suspended by hand (or its holder released it since): leave it
	}
	if s.holds != nil {
		var err error
		if s.etag, err = s.holds.PutFleetHold(ctx, s.mine, etag); err != nil {
			return fmt.Errorf("record the hold on %s: %w", s.mine.Service, err)
		}
	}
	if live {
		s.previous = cur
	}
	s.holding = true
	// Suspended again even when found suspended: a holder releasing at
	// this moment may have resumed it.
	if err := s.register(ctx, true); err != nil {
		return errors.Join(err, s.Release(context.WithoutCancel(ctx)))
	}
	s.suspendedByMe = !suspended
	return nil
}

// Owns reports whether this steering may set the service's size: no other
// s3clone command holds its scale-in; if one does, it returns its hold. A
// hold that cannot be read is not owned (the size is left alone).
func (s *Steering) Owns(ctx context.Context) (bool, *ledger.FleetHold) {
	if s == nil || s.target == nil || s.holds == nil {
		return true, nil
	}
	cur, _, err := s.holds.FleetHold(ctx, s.mine.Service)
	switch {
	case err != nil:
		return false, nil
	case cur == nil || !cur.Released.IsZero():
		return true, nil // nobody holds it
	case s.holding && cur.ID == s.mine.ID:
		return true, nil
	}
	return false, cur
}

// HasAutoscaling reports whether the service has a scalable target (the
// stack's Autoscaling=backlog).
func (s *Steering) HasAutoscaling() bool { return s != nil && s.target != nil }

// MaxCapacity is the scalable target's maximum, if there is a target:
// Application Auto Scaling brings a desired count above it back down at
// its next scaling activity, scale-in suspended or not.
func (s *Steering) MaxCapacity() (int, bool) {
	if s == nil || s.target == nil || s.target.MaxCapacity == nil {
		return 0, false
	}
	return int(*s.target.MaxCapacity), true
}

// Suspended reports whether this steering holds scale-in suspended.
func (s *Steering) Suspended() bool { return s != nil && s.holding }

// Release gives the hold back: to the command it was taken from, if any
// (scale-in stays suspended); otherwise the hold is marked released and
// scale-in resumed if this steering suspended it. A hold taken over since
// by another command is left to it. It is safe on nil and more than once.
func (s *Steering) Release(ctx context.Context) error {
	if s == nil || !s.holding {
		return nil
	}
	s.holding = false
	if s.holds != nil {
		cur, etag, err := s.holds.FleetHold(ctx, s.mine.Service)
		if err != nil {
			return fmt.Errorf("read who holds %s, so scale-in stays suspended (planner fleet --release resumes it): %w", s.mine.Service, err)
		}
		if cur == nil || cur.ID != s.mine.ID {
			return nil // taken over since: the other command's now
		}
		next := s.mine
		next.Released = time.Now().UTC()
		if s.previous != nil {
			next = *s.previous // back to the one it was taken from
		}
		if _, err := s.holds.PutFleetHold(ctx, next, etag); err != nil {
			if errors.Is(err, ledger.ErrHoldMoved) {
				return nil // taken over at this moment
			}
			return fmt.Errorf("give back the hold on %s, so scale-in stays suspended (planner fleet --release resumes it): %w", s.mine.Service, err)
		}
		if s.previous != nil {
			return nil
		}
	}
	if s.suspendedByMe {
		return s.register(ctx, false)
	}
	return nil
}

// Resume resumes dynamic scale-in whoever holds it and marks the hold
// released (planner fleet --release: the stack's own state).
func Resume(ctx context.Context, aas AutoScaling, svc Service, holds Holds) (bool, error) {
	s, err := Look(ctx, aas, svc)
	if err != nil || s.target == nil {
		return false, err
	}
	if err := s.register(ctx, false); err != nil {
		return false, err
	}
	if holds == nil {
		return true, nil
	}
	h, etag, err := holds.FleetHold(ctx, svc.ResourceID())
	if err == nil && h != nil && h.Released.IsZero() {
		h.Released = time.Now().UTC()
		_, err = holds.PutFleetHold(ctx, *h, etag)
	}
	if err != nil {
		return true, fmt.Errorf("scale-in resumed, but the hold on %s is still recorded: %w", svc.ResourceID(), err)
	}
	return true, nil
}

// register sets DynamicScalingInSuspended, keeping the target's other
// suspended states and its bounds (RegisterScalableTarget on a registered
// target updates only what it is given).
func (s *Steering) register(ctx context.Context, suspend bool) error {
	state := &aastypes.SuspendedState{DynamicScalingInSuspended: aws.Bool(suspend)}
	if old := s.target.SuspendedState; old != nil {
		state.DynamicScalingOutSuspended = old.DynamicScalingOutSuspended
		state.ScheduledScalingSuspended = old.ScheduledScalingSuspended
	}
	_, err := s.aas.RegisterScalableTarget(ctx, &applicationautoscaling.RegisterScalableTargetInput{
		ServiceNamespace:  aastypes.ServiceNamespaceEcs,
		ResourceId:        aws.String(s.svc.ResourceID()),
		ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		SuspendedState:    state,
	})
	if err != nil {
		verb := "resume"
		if suspend {
			verb = "suspend"
		}
		return fmt.Errorf("%s dynamic scale-in of %s: %w (grant application-autoscaling:RegisterScalableTarget, with ecs:DescribeServices and ecs:UpdateService on the service)", verb, s.svc.ResourceID(), err)
	}
	s.target.SuspendedState = state
	return nil
}

// Warmed is what a warm-up did.
type Warmed struct {
	Result
	Took    time.Duration `json:"took_ns"`
	Reached bool          `json:"reached"` // Running reached the count asked for
}

// Warm raises svc's desired count to at least n (never lowers it: a fleet
// already larger is kept) and waits until n tasks run, polling every poll,
// for at most wait (0: do not wait). A Fargate task takes about a minute
// from the desired count to RUNNING (image pull included); Warm says how
// long it took, or that it did not get there.
func Warm(ctx context.Context, api API, svc Service, n int, wait, poll time.Duration) (Warmed, error) {
	start := time.Now()
	r, err := setDesired(ctx, api, svc, n, func(previous int) int { return max(previous, n) })
	w := Warmed{Result: r}
	if err != nil {
		return w, err
	}
	for {
		if w.Running >= n {
			w.Reached = true
			break
		}
		if time.Since(start) >= wait || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
		running, err := runningCount(ctx, api, svc)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return w, err
		}
		w.Running = running
	}
	w.Took = time.Since(start)
	return w, nil
}

// Held is a fleet warmed and steered for one window (cutover --scale-ecs):
// Return gives it back as it was found.
type Held struct {
	api    API
	svc    Service
	steer  *Steering
	Warmed Warmed
	// SteerErr is why dynamic scale-in could not be suspended, if it could not.
	SteerErr error
}

// Hold takes the steering of svc and raises its desired count to at least
// n without waiting: the tasks start while the cutover lists. Steering
// that cannot be taken (Application Auto Scaling refused) does not stop
// the window: Hold returns it as SteerErr, for the caller to say.
func Hold(ctx context.Context, api API, aas AutoScaling, svc Service, n int, who Holder) (*Held, error) {
	steer, steerErr := Steer(ctx, aas, svc, who)
	if most, ok := steer.MaxCapacity(); ok && n > most {
		// Application Auto Scaling sets a count above its target's maximum
		// back to it at its next scaling activity, stopping workers mid-copy.
		steerErr = errors.Join(steerErr, fmt.Errorf("%d workers asked for, but the service's scalable target allows at most %d (the stack's MaxWorkers): holding %d", n, most, most))
		n = most
	}
	w, err := Warm(ctx, api, svc, n, 0, 0)
	if err != nil {
		return nil, errors.Join(err, steer.Release(context.WithoutCancel(ctx)))
	}
	return &Held{api: api, svc: svc, steer: steer, Warmed: w, SteerErr: steerErr}, nil
}

// Running reads how many workers run now.
func (h *Held) Running(ctx context.Context) (int, error) { return runningCount(ctx, h.api, h.svc) }

// Steering is the steering Hold took.
func (h *Held) Steering() *Steering { return h.steer }

// Return sets the desired count back to what it was before Hold, if Hold
// raised it and keep is false, and resumes scale-in if Hold suspended it.
// It is safe on nil.
func (h *Held) Return(ctx context.Context, keep bool) (Result, error) {
	if h == nil {
		return Result{}, nil
	}
	r := Result{Service: h.svc.String()}
	var err error
	if h.Warmed.Changed && !keep {
		r, err = setDesired(ctx, h.api, h.svc, h.Warmed.Previous, func(int) int { return h.Warmed.Previous })
	}
	return r, errors.Join(err, h.steer.Release(ctx))
}

package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
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
// backlog grows, never remove them; s3clone alone decides the size. Release
// puts the suspension back as it was found. A service without a scalable
// target (Autoscaling=off) has nothing to suspend.
type Steering struct {
	aas    AutoScaling
	svc    Service
	target *aastypes.ScalableTarget // nil: none registered
	// suspended: this steering suspended scale-in (it was running).
	suspended bool
}

// ErrNoSuspend is wrapped by Steer's error when the caller may not change
// the scalable target.
var ErrNoSuspend = errors.New("cannot suspend the worker service's dynamic scale-in")

// Steer takes the steering of svc: it reads the service's scalable target
// and, if scale-in is not suspended, suspends it (keeping its other
// suspended states). Release restores it.
func Steer(ctx context.Context, aas AutoScaling, svc Service) (*Steering, error) {
	s, err := look(ctx, aas, svc)
	if err != nil || s.target == nil {
		return s, err // no target: Autoscaling=off, s3clone is the only one steering
	}
	if st := s.target.SuspendedState; st != nil && aws.ToBool(st.DynamicScalingInSuspended) {
		return s, nil // already suspended (by the operator, or a steering still under way): leave it
	}
	if err := s.register(ctx, true); err != nil {
		return nil, err
	}
	s.suspended = true
	return s, nil
}

// look reads svc's scalable target, if it has one, into a steering that
// has changed nothing yet.
func look(ctx context.Context, aas AutoScaling, svc Service) (*Steering, error) {
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

// Suspended reports whether this steering suspended scale-in itself.
func (s *Steering) Suspended() bool { return s != nil && s.suspended }

// Release gives the steering back: scale-in is resumed if this steering
// suspended it. It is safe to call on nil and more than once.
func (s *Steering) Release(ctx context.Context) error {
	if s == nil || !s.suspended {
		return nil
	}
	if err := s.register(ctx, false); err != nil {
		return err
	}
	s.suspended = false
	return nil
}

// Resume resumes dynamic scale-in whoever suspended it (planner fleet
// --release: the stack's own state).
func Resume(ctx context.Context, aas AutoScaling, svc Service) (bool, error) {
	s, err := look(ctx, aas, svc)
	if err != nil || s.target == nil {
		return false, err
	}
	if err := s.register(ctx, false); err != nil {
		return false, err
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
func Hold(ctx context.Context, api API, aas AutoScaling, svc Service, n int) (*Held, error) {
	steer, steerErr := Steer(ctx, aas, svc)
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

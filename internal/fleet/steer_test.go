package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"

	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/test/testbed"
)

func autoScaling(url string) *applicationautoscaling.Client {
	return applicationautoscaling.New(applicationautoscaling.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret", ""),
	})
}

// TestSteerSuspendsScaleInAndRestoresIt: while s3clone steers, the
// stack's target tracking may add workers but not remove them; Release
// puts back what it found, and leaves alone a suspension it did not make.
func TestSteerSuspendsScaleInAndRestoresIt(t *testing.T) {
	ctx := context.Background()
	svc := fleet.Service{Cluster: "s3clone", Name: "workers"}
	for _, c := range []struct {
		name          string
		target        *testbed.FakeTarget // nil: Autoscaling=off
		wantDuring    bool
		wantAfter     bool
		registrations int
	}{
		{"running scale-in is suspended, then resumed", &testbed.FakeTarget{}, true, false, 2},
		{"a suspension found is left as it was", &testbed.FakeTarget{ScaleInSuspended: true}, true, true, 0},
		{"scale-out stays as it was", &testbed.FakeTarget{ScaleOutSuspended: true}, true, false, 2},
		{"no scalable target: nothing to suspend", nil, false, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 2}})
			if c.target != nil {
				fake.AddTarget("s3clone/workers", c.target)
			}
			outBefore := c.target != nil && c.target.ScaleOutSuspended
			s, err := fleet.Steer(ctx, autoScaling(fake.URL), svc, fleet.Holder{})
			if err != nil {
				t.Fatal(err)
			}
			if s.HasAutoscaling() != (c.target != nil) {
				t.Errorf("HasAutoscaling = %v with target %v", s.HasAutoscaling(), c.target)
			}
			if c.target != nil {
				if got := fake.Target("s3clone/workers"); got.ScaleInSuspended != c.wantDuring || got.ScaleOutSuspended != outBefore {
					t.Errorf("while steering: %+v, want scale-in suspended %v, scale-out %v", got, c.wantDuring, outBefore)
				}
			}
			if err := s.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Release(ctx); err != nil { // twice: a deferred release after an explicit one
				t.Fatal(err)
			}
			if c.target != nil {
				got := fake.Target("s3clone/workers")
				if got.ScaleInSuspended != c.wantAfter || got.ScaleOutSuspended != outBefore || got.Registrations != c.registrations {
					t.Errorf("after release: %+v, want scale-in suspended %v after %d registrations", got, c.wantAfter, c.registrations)
				}
			}
		})
	}
}

func TestSteerErrorsNameTheGrant(t *testing.T) {
	ctx := context.Background()
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 2}})
	fake.AddTarget("s3clone/workers", &testbed.FakeTarget{RefuseRegister: true})
	_, err := fleet.Steer(ctx, autoScaling(fake.URL), fleet.Service{Cluster: "s3clone", Name: "workers"}, fleet.Holder{})
	if err == nil || !strings.Contains(err.Error(), "application-autoscaling:RegisterScalableTarget") {
		t.Errorf("Steer with RegisterScalableTarget refused: %v, want the grant named", err)
	}
	if got := fake.Target("s3clone/workers"); got.ScaleInSuspended {
		t.Errorf("scale-in suspended although refused: %+v", got)
	}
	_, err = fleet.Steer(ctx, autoScaling("http://127.0.0.1:1"), fleet.Service{Cluster: "s3clone", Name: "workers"}, fleet.Holder{})
	if !errors.Is(err, fleet.ErrNoSuspend) {
		t.Errorf("Steer with Application Auto Scaling unreachable: %v, want ErrNoSuspend", err)
	}
}

func TestResourceID(t *testing.T) {
	for in, want := range map[fleet.Service]string{
		{Cluster: "s3clone", Name: "workers"}:                                            "service/s3clone/workers",
		{Cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/s3clone", Name: "workers"}: "service/s3clone/workers",
	} {
		if got := in.ResourceID(); got != want {
			t.Errorf("%+v.ResourceID() = %q, want %q", in, got, want)
		}
	}
}

// TestWarm raises the desired count, never lowers it, and says whether the
// workers came up within the wait.
func TestWarm(t *testing.T) {
	ctx := context.Background()
	svc := fleet.Service{Cluster: "s3clone", Name: "workers"}
	for _, c := range []struct {
		name                string
		desired, running, n int
		wantDesired         int
		wantReached         bool
		wantUpdates         []int
	}{
		{"from zero: set, tasks do not start in time", 0, 0, 3, 3, false, []int{3}},
		{"already running", 4, 4, 3, 4, true, nil},
		{"desired but not running yet", 3, 1, 3, 3, false, nil},
		{"from zero: tasks start while it waits", 0, 0, 3, 3, true, []int{3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc0 := &testbed.FakeService{DesiredCount: c.desired, RunningCount: c.running}
			if c.wantReached && c.running < c.n {
				svc0.StartAfter = 2 // running on the second poll after the update
			}
			fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": svc0})
			wait := 50 * time.Millisecond // long enough for the cases that do not reach it
			if c.wantReached {
				wait = 5 * time.Second
			}
			w, err := fleet.Warm(ctx, client(fake.URL), svc, c.n, wait, 10*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if w.Desired != c.wantDesired || w.Reached != c.wantReached || w.Previous != c.desired {
				t.Errorf("Warm = %+v; want desired %d, reached %v", w, c.wantDesired, c.wantReached)
			}
			if got := fake.Updates(); !slices.Equal(got, c.wantUpdates) {
				t.Errorf("updates %v, want %v", got, c.wantUpdates)
			}
			if !c.wantReached && w.Took < 50*time.Millisecond {
				t.Errorf("gave up after %s, before the wait", w.Took)
			}
		})
	}
}

// TestHoldStaysWithinTheTargetsMaximum: Application Auto Scaling sets a
// count above its target's MaxCapacity back at its next scaling activity,
// stopping workers mid-copy, so a hold asks for no more than that; giving
// the fleet back restores the count and the scale-in found.
func TestHoldStaysWithinTheTargetsMaximum(t *testing.T) {
	ctx := context.Background()
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 0}})
	fake.AddTarget("s3clone/workers", &testbed.FakeTarget{}) // MaxCapacity 16
	svc := fleet.Service{Cluster: "s3clone", Name: "workers"}
	h, err := fleet.Hold(ctx, client(fake.URL), autoScaling(fake.URL), svc, 20, fleet.Holder{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Warmed.Desired != 16 || h.SteerErr == nil || !strings.Contains(h.SteerErr.Error(), "at most 16") {
		t.Errorf("Hold(20) = desired %d, %v; want 16 and a warning naming the maximum", h.Warmed.Desired, h.SteerErr)
	}
	if !fake.Target("s3clone/workers").ScaleInSuspended {
		t.Error("scale-in not suspended while held")
	}
	r, err := h.Return(ctx, false)
	if err != nil || r.Desired != 0 || fake.Target("s3clone/workers").ScaleInSuspended {
		t.Errorf("Return = %+v, %v; target %+v; want the count back at 0 and scale-in resumed", r, err, fake.Target("s3clone/workers"))
	}
	if got := fake.Updates(); !slices.Equal(got, []int{16, 0}) {
		t.Errorf("desired counts set %v, want [16 0]", got)
	}
}

// TestResume resumes scale-in whoever suspended it, with one registration,
// and says when there is no scalable target to resume.
func TestResume(t *testing.T) {
	ctx := context.Background()
	svc := fleet.Service{Cluster: "s3clone", Name: "workers"}
	for _, suspended := range []bool{true, false} {
		fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {}})
		fake.AddTarget("s3clone/workers", &testbed.FakeTarget{ScaleInSuspended: suspended})
		resumed, err := fleet.Resume(ctx, autoScaling(fake.URL), svc, nil)
		if got := fake.Target("s3clone/workers"); err != nil || !resumed || got.ScaleInSuspended || got.Registrations != 1 {
			t.Errorf("Resume with scale-in suspended %v: %v, %v; target %+v; want resumed with one registration", suspended, resumed, err, got)
		}
	}
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {}})
	if resumed, err := fleet.Resume(ctx, autoScaling(fake.URL), svc, nil); err != nil || resumed {
		t.Errorf("Resume without a scalable target: %v, %v; want false", resumed, err)
	}
}

// memHolds records holds in memory with ETags and conditional writes, as
// the ledger does on S3 (whose own test is the ledger's; here the
// steering's rules).
type memHolds struct {
	mu      sync.Mutex
	holds   map[string]ledger.FleetHold
	etags   map[string]string
	version int
}

func (m *memHolds) FleetHold(_ context.Context, service string) (*ledger.FleetHold, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.holds[service]
	if !ok {
		return nil, "", nil
	}
	return &h, m.etags[service], nil
}

func (m *memHolds) PutFleetHold(_ context.Context, h ledger.FleetHold, etag string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holds == nil {
		m.holds, m.etags = map[string]ledger.FleetHold{}, map[string]string{}
	}
	if m.etags[h.Service] != etag {
		return "", ledger.ErrHoldMoved
	}
	m.version++
	m.holds[h.Service], m.etags[h.Service] = h, fmt.Sprint(m.version)
	return m.etags[h.Service], nil
}

// TestHoldsDecideWhoSteers plays what the adversarial review found: a
// days-old status --watch holding the fleet when the operator warms it
// with planner fleet, a cutover taking the fleet for the window and giving
// it back, a status started meanwhile, and a holder killed before its
// release. The one that holds decides the size; scale-in is resumed only
// by the one that suspended it, or by planner fleet --release.
func TestHoldsDecideWhoSteers(t *testing.T) {
	ctx := context.Background()
	svc := fleet.Service{Cluster: "s3clone", Name: "workers"}
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {}})
	fake.AddTarget("s3clone/workers", &testbed.FakeTarget{})
	aas := autoScaling(fake.URL)
	holds := &memHolds{}
	suspended := func() bool { return fake.Target("s3clone/workers").ScaleInSuspended }
	holder := func() string {
		h, _, _ := holds.FleetHold(ctx, svc.ResourceID())
		if h == nil || !h.Released.IsZero() {
			return ""
		}
		return h.Holder
	}

	// A status --watch from the bulk copy holds it; planner fleet takes it
	// over; status, ending, leaves both to planner fleet.
	st, err := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner status", Holds: holds})
	if err != nil || !suspended() || holder() != "planner status" {
		t.Fatalf("status's steering: %v, suspended %v, holder %q", err, suspended(), holder())
	}
	if owns, _ := st.Owns(ctx); !owns {
		t.Fatal("status does not own the hold it made")
	}
	fl, err := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner fleet", TakeOver: true, Holds: holds})
	if err != nil || holder() != "planner fleet" {
		t.Fatalf("planner fleet's take-over: %v, holder %q", err, holder())
	}
	if owns, other := st.Owns(ctx); owns || other == nil || other.Holder != "planner fleet" {
		t.Errorf("status after planner fleet took over: owns %v, other %+v; want planner fleet's hold", owns, other)
	}
	if err := st.Release(ctx); err != nil || !suspended() || holder() != "planner fleet" {
		t.Errorf("status's release after a take-over: %v, suspended %v, holder %q; want planner fleet's, suspended", err, suspended(), holder())
	}

	// The cutover takes it for the window; a status started meanwhile
	// leaves it; the cutover gives it back to planner fleet.
	cut, err := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner cutover", TakeOver: true, Holds: holds})
	if err != nil || holder() != "planner cutover" {
		t.Fatalf("the cutover's take-over: %v, holder %q", err, holder())
	}
	during, err := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner status", Holds: holds})
	if err != nil {
		t.Fatal(err)
	}
	if owns, other := during.Owns(ctx); owns || other == nil || other.Holder != "planner cutover" {
		t.Errorf("a status during the cutover: owns %v, other %+v", owns, other)
	}
	if owns, _ := fl.Owns(ctx); owns {
		t.Error("planner fleet still owns the fleet during the cutover")
	}
	if err := during.Release(ctx); err != nil || !suspended() || holder() != "planner cutover" {
		t.Errorf("that status's release: %v, suspended %v, holder %q", err, suspended(), holder())
	}
	if err := cut.Release(ctx); err != nil || !suspended() || holder() != "planner fleet" {
		t.Errorf("the cutover's release: %v, suspended %v, holder %q; want it back with planner fleet, suspended", err, suspended(), holder())
	}
	if owns, _ := fl.Owns(ctx); !owns {
		t.Error("planner fleet does not own the fleet again after the cutover")
	}

	// planner fleet --release resumes it and marks the hold released.
	if resumed, err := fleet.Resume(ctx, aas, svc, holds); err != nil || !resumed || suspended() || holder() != "" {
		t.Errorf("Resume: %v, %v, suspended %v, holder %q", resumed, err, suspended(), holder())
	}

	// A status that suspended it itself resumes it at its end.
	own, err := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner status", Holds: holds})
	if err != nil || !suspended() {
		t.Fatal(err)
	}
	if err := own.Release(ctx); err != nil || suspended() || holder() != "" {
		t.Errorf("status's own release: %v, suspended %v, holder %q; want resumed and released", err, suspended(), holder())
	}

	// A holder killed before its release: the next status leaves the
	// fleet to it, and planner fleet --release frees it.
	dead, _ := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner cutover", TakeOver: true, Holds: holds})
	_ = dead // killed: no Release
	later, _ := fleet.Steer(ctx, aas, svc, fleet.Holder{Name: "planner status", Holds: holds})
	if owns, other := later.Owns(ctx); owns || other == nil || other.Holder != "planner cutover" {
		t.Errorf("status after a killed cutover: owns %v, other %+v; want the cutover's hold named", owns, other)
	}
	if resumed, err := fleet.Resume(ctx, aas, svc, holds); err != nil || !resumed || suspended() || holder() != "" {
		t.Errorf("Resume after a killed holder: %v, %v, suspended %v, holder %q", resumed, err, suspended(), holder())
	}
}

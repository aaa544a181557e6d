package fleet_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/test/testbed"
)

func client(url string) *ecs.Client {
	return ecs.New(ecs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret", ""),
	})
}

// TestScale drives Scale through the SDK against the fake ECS API: the
// requests are the SDK's own, the answers the fake's.
func TestScale(t *testing.T) {
	bounds := fleet.Bounds{Min: 1, Max: 8}
	cases := []struct {
		name        string
		desired     int // the service's desired count before
		wanted      int
		want        int  // desired count after
		wantChanged bool // an UpdateService was sent
	}{
		{"scales out to what the deadline needs", 2, 5, 5, true},
		{"scales in", 6, 3, 3, true},
		{"caps at the most workers", 2, 40, 8, true},
		{"keeps the fewest workers", 4, 0, 1, true},
		{"leaves a right count alone", 5, 5, 5, false},
		{"unknown rate keeps the fleet", 3, fleet.Unknown, 3, false},
		{"unknown rate starts one worker", 0, fleet.Unknown, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: c.desired, RunningCount: c.desired}})
			svc := fleet.Service{Cluster: "s3clone", Name: "workers"}
			r, err := fleet.Scale(context.Background(), client(fake.URL), svc, c.wanted, bounds)
			if err != nil {
				t.Fatal(err)
			}
			if r.Desired != c.want || r.Previous != c.desired || r.Changed != c.wantChanged || r.Running != c.desired {
				t.Errorf("Scale = %+v; want desired %d from %d, changed %v", r, c.want, c.desired, c.wantChanged)
			}
			if got := fake.Service("s3clone/workers").DesiredCount; got != c.want {
				t.Errorf("the service's desired count is %d, want %d", got, c.want)
			}
			var wantUpdates []int
			if c.wantChanged {
				wantUpdates = []int{c.want}
			}
			if got := fake.Updates(); !slices.Equal(got, wantUpdates) {
				t.Errorf("updates sent: %v, want %v", got, wantUpdates)
			}
		})
	}
}

func TestScaleErrors(t *testing.T) {
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{
		"s3clone/workers": {DesiredCount: 1},
		"s3clone/old":     {DesiredCount: 0, Status: "DRAINING"},
		"s3clone/locked":  {DesiredCount: 1, RefuseUpdates: true},
	})
	for svc, want := range map[fleet.Service]string{
		{Cluster: "s3clone", Name: "locked"}:  "set the desired count of ECS service s3clone/locked to 3: ",
		{Cluster: "s3clone", Name: "missing"}: "missing: check the cluster and service names",
		{Cluster: "other", Name: "workers"}:   "missing: check the cluster and service names",
		{Cluster: "s3clone", Name: "old"}:     "is DRAINING, not ACTIVE",
	} {
		_, err := fleet.Scale(context.Background(), client(fake.URL), svc, 3, fleet.Bounds{Min: 0, Max: 4})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Scale(%s): %v, want an error saying %q", svc, err, want)
		}
	}
	if u := fake.Updates(); len(u) != 0 {
		t.Errorf("updates sent after errors: %v", u)
	}
}

func TestParseService(t *testing.T) {
	for in, want := range map[string]fleet.Service{
		"s3clone/workers": {Cluster: "s3clone", Name: "workers"},
		"arn:aws:ecs:eu-west-1:123456789012:cluster/s3clone/workers": {Cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/s3clone", Name: "workers"},
	} {
		got, err := fleet.ParseService(in)
		if err != nil || got != want {
			t.Errorf("ParseService(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "workers", "s3clone/", "/workers"} {
		if _, err := fleet.ParseService(bad); err == nil || !strings.Contains(err.Error(), "CLUSTER/SERVICE") {
			t.Errorf("ParseService(%q): %v, want an error that shows the form", bad, err)
		}
	}
}

// Package fleet sizes the worker fleet: it sets an ECS service's desired
// count to the number of workers a deadline needs, within the operator's
// bounds.
package fleet

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// API is the part of the ECS client the scaler uses.
type API interface {
	DescribeServices(ctx context.Context, in *ecs.DescribeServicesInput, optFns ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	UpdateService(ctx context.Context, in *ecs.UpdateServiceInput, optFns ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
}

var _ API = (*ecs.Client)(nil)

// Service names an ECS service in a cluster.
type Service struct {
	Cluster, Name string
}

// ParseService reads "CLUSTER/SERVICE" (names or ARNs of the cluster).
func ParseService(s string) (Service, error) {
	i := strings.LastIndex(s, "/")
	if i <= 0 || i == len(s)-1 {
		return Service{}, fmt.Errorf("%q is not CLUSTER/SERVICE: write the cluster and service names, e.g. s3clone/s3clone-workers (the stack's ScaleEcs output)", s)
	}
	return Service{Cluster: s[:i], Name: s[i+1:]}, nil
}

func (s Service) String() string { return s.Cluster + "/" + s.Name }

// Bounds limit the desired count.
type Bounds struct {
	Min, Max int
}

// Clamp returns n within the bounds.
func (b Bounds) Clamp(n int) int {
	return min(max(n, b.Min), b.Max)
}

// Result is what a scaling did.
type Result struct {
	Service  string `json:"service"`
	Wanted   int    `json:"wanted"` // what the deadline needs, before bounds
	Desired  int    `json:"desired"`
	Previous int    `json:"previous"`
	Running  int    `json:"running"`
	Changed  bool   `json:"changed"`
}

// Unknown, as the wanted count, keeps the service's desired count but
// starts at least one worker: with no rate measured yet there is nothing to
// size the fleet by, and a fleet of none would never measure one.
const Unknown = -1

// Scale sets svc's desired count to wanted, clamped to bounds; it leaves
// the service alone when the count is already right.
func Scale(ctx context.Context, api API, svc Service, wanted int, b Bounds) (Result, error) {
	return setDesired(ctx, api, svc, wanted, func(previous int) int {
		if wanted == Unknown {
			return b.Clamp(max(1, previous))
		}
		return b.Clamp(wanted)
	})
}

// setDesired sets svc's desired count to what desired makes of the
// current one, unless it is that already.
func setDesired(ctx context.Context, api API, svc Service, wanted int, desired func(previous int) int) (Result, error) {
	r := Result{Service: svc.String(), Wanted: wanted}
	cur, err := describe(ctx, api, svc)
	if err != nil {
		return r, err
	}
	r.Previous, r.Running = int(cur.DesiredCount), int(cur.RunningCount)
	r.Desired = desired(r.Previous)
	if r.Previous == r.Desired {
		return r, nil
	}
	if _, err := api.UpdateService(ctx, &ecs.UpdateServiceInput{
		Cluster: aws.String(svc.Cluster), Service: aws.String(svc.Name), DesiredCount: aws.Int32(int32(r.Desired)),
	}); err != nil {
		return r, fmt.Errorf("set the desired count of ECS service %s to %d: %w", svc, r.Desired, err)
	}
	r.Changed = true
	return r, nil
}

// describe reads svc, which must be ACTIVE.
func describe(ctx context.Context, api API, svc Service) (types.Service, error) {
	out, err := api.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(svc.Cluster), Services: []string{svc.Name}})
	if err != nil {
		return types.Service{}, fmt.Errorf("describe ECS service %s: %w", svc, err)
	}
	if len(out.Services) == 0 {
		reason := "not found"
		if len(out.Failures) > 0 && out.Failures[0].Reason != nil {
			reason = strings.ToLower(*out.Failures[0].Reason)
		}
		return types.Service{}, fmt.Errorf("ECS service %s: %s: check the cluster and service names (the stack's ScaleEcs output)", svc, reason)
	}
	cur := out.Services[0]
	if cur.Status != nil && *cur.Status != "ACTIVE" {
		return types.Service{}, fmt.Errorf("ECS service %s is %s, not ACTIVE", svc, *cur.Status)
	}
	return cur, nil
}

// runningCount is how many of svc's tasks run.
func runningCount(ctx context.Context, api API, svc Service) (int, error) {
	cur, err := describe(ctx, api, svc)
	return int(cur.RunningCount), err
}

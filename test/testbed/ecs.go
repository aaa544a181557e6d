package testbed

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// FakeECS is an ECS API on loopback that knows DescribeServices and
// UpdateService (the JSON 1.1 protocol the SDK speaks), for the scaling that
// no local server offers. It records every desired count it is set to.
// The same endpoint answers Application Auto Scaling's
// DescribeScalableTargets and RegisterScalableTarget for the services'
// scalable targets (AddTarget); moto's are tested in test/stack's TestDeployOnMoto.
type FakeECS struct {
	URL string

	mu       sync.Mutex
	services map[string]*FakeService // by "cluster/service"
	targets  map[string]*FakeTarget  // by resource ID, service/CLUSTER/SERVICE
	updates  []int
	calls    []string
	srv      *httptest.Server
}

// FakeTarget is a scalable target's suspended state.
type FakeTarget struct {
	ScaleInSuspended, ScaleOutSuspended bool
	// Registrations counts RegisterScalableTarget calls on it.
	Registrations int
	// RefuseRegister answers RegisterScalableTarget with AccessDeniedException.
	RefuseRegister bool
}

// AddTarget registers a scalable target for "cluster/service".
func (f *FakeECS) AddTarget(service string, t *FakeTarget) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.targets == nil {
		f.targets = map[string]*FakeTarget{}
	}
	f.targets["service/"+service] = t
}

// Target returns a scalable target's current state ("cluster/service").
func (f *FakeECS) Target(service string) FakeTarget {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.targets["service/"+service]
}

// FakeService is one service's state.
type FakeService struct {
	Status       string // ACTIVE unless set
	DesiredCount int
	RunningCount int
	// RefuseUpdates answers UpdateService with AccessDeniedException.
	RefuseUpdates bool
	// StartAfter, if not 0, plays tasks starting: the StartAfter-th
	// DescribeServices after an UpdateService finds RunningCount at the
	// desired count (0: RunningCount stays as set).
	StartAfter int
	describes  int // since the last update
}

// NewFakeECS starts a fake ECS with these services ("cluster/service").
func NewFakeECS(t testing.TB, services map[string]*FakeService) *FakeECS {
	f := &FakeECS{services: services}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve)) // listens on 127.0.0.1
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// Updates are the desired counts set so far, in order.
func (f *FakeECS) Updates() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.updates...)
}

// Calls are the operations called so far, in order.
func (f *FakeECS) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Service returns a service's current state.
func (f *FakeECS) Service(name string) FakeService {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.services[name]
}

func (f *FakeECS) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		fakeError(w, 400, "InvalidParameterException", "not a signed JSON 1.1 request")
		return
	}
	if op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AnyScaleFrontendService."); ok {
		f.serveAutoScaling(w, r, op)
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonEC2ContainerServiceV20141113.")
	if !ok {
		fakeError(w, 400, "InvalidParameterException", "not an ECS or Application Auto Scaling request")
		return
	}
	var in struct {
		Cluster      string   `json:"cluster"`
		Service      string   `json:"service"`
		Services     []string `json:"services"`
		DesiredCount *int     `json:"desiredCount"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fakeError(w, 400, "InvalidParameterException", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	switch op {
	case "DescribeServices":
		out := map[string]any{"services": []any{}, "failures": []any{}}
		for _, name := range in.Services {
			s, ok := f.services[in.Cluster+"/"+name]
			if !ok {
				out["failures"] = append(out["failures"].([]any), map[string]any{"arn": name, "reason": "MISSING"})
				continue
			}
			if s.describes++; s.StartAfter > 0 && s.describes == s.StartAfter {
				s.RunningCount = s.DesiredCount
			}
			out["services"] = append(out["services"].([]any), serviceJSON(in.Cluster, name, s))
		}
		json.NewEncoder(w).Encode(out)
	case "UpdateService":
		s, ok := f.services[in.Cluster+"/"+in.Service]
		switch {
		case !ok:
			fakeError(w, 400, "ServiceNotFoundException", "Service not found.")
		case s.RefuseUpdates:
			fakeError(w, 400, "AccessDeniedException", "not authorized to perform: ecs:UpdateService")
		case in.DesiredCount == nil || *in.DesiredCount < 0:
			fakeError(w, 400, "InvalidParameterException", "desiredCount")
		default:
			s.DesiredCount, s.describes = *in.DesiredCount, 0
			f.updates = append(f.updates, s.DesiredCount)
			json.NewEncoder(w).Encode(map[string]any{"service": serviceJSON(in.Cluster, in.Service, s)})
		}
	default:
		fakeError(w, 400, "UnknownOperationException", op)
	}
}

// serveAutoScaling answers Application Auto Scaling for ECS services.
func (f *FakeECS) serveAutoScaling(w http.ResponseWriter, r *http.Request, op string) {
	var in struct {
		ServiceNamespace  string   `json:"ServiceNamespace"`
		ResourceIDs       []string `json:"ResourceIds"`
		ResourceID        string   `json:"ResourceId"`
		ScalableDimension string   `json:"ScalableDimension"`
		SuspendedState    *struct {
			In  *bool `json:"DynamicScalingInSuspended"`
			Out *bool `json:"DynamicScalingOutSuspended"`
		} `json:"SuspendedState"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.ServiceNamespace != "ecs" {
		fakeError(w, 400, "ValidationException", fmt.Sprintf("want ServiceNamespace ecs: %v", err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	switch op {
	case "DescribeScalableTargets":
		out := []any{}
		for _, id := range in.ResourceIDs {
			if t, ok := f.targets[id]; ok {
				out = append(out, map[string]any{
					"ServiceNamespace": "ecs", "ResourceId": id, "ScalableDimension": "ecs:service:DesiredCount",
					"MinCapacity": 0, "MaxCapacity": 16, "CreationTime": 1.7e9,
					"SuspendedState": map[string]bool{"DynamicScalingInSuspended": t.ScaleInSuspended, "DynamicScalingOutSuspended": t.ScaleOutSuspended, "ScheduledScalingSuspended": false},
				})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"ScalableTargets": out})
	case "RegisterScalableTarget":
		t, ok := f.targets[in.ResourceID]
		switch {
		case !ok:
			fakeError(w, 400, "ValidationException", "this fake registers no new targets: "+in.ResourceID)
		case t.RefuseRegister:
			fakeError(w, 400, "AccessDeniedException", "not authorized to perform: application-autoscaling:RegisterScalableTarget")
		default:
			t.Registrations++
			if st := in.SuspendedState; st != nil {
				if st.In != nil {
					t.ScaleInSuspended = *st.In
				}
				if st.Out != nil {
					t.ScaleOutSuspended = *st.Out
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"ScalableTargetARN": "arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/fake"})
		}
	default:
		fakeError(w, 400, "UnknownOperationException", op)
	}
}

func serviceJSON(cluster, name string, s *FakeService) map[string]any {
	status := s.Status
	if status == "" {
		status = "ACTIVE"
	}
	return map[string]any{
		"serviceName":  name,
		"serviceArn":   fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:service/%s/%s", cluster, name),
		"clusterArn":   "arn:aws:ecs:us-east-1:123456789012:cluster/" + cluster,
		"status":       status,
		"desiredCount": s.DesiredCount,
		"runningCount": s.RunningCount,
	}
}

func fakeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

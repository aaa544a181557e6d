package stack

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/test/testbed"
	"github.com/s3clone/s3clone/test/testbed/stackbed"
)

// TestPlannerFleetOnMoto drives the runbook's fleet steps against a stack
// made from the template on moto: planner fleet warms the stack's worker
// service (its ScaleEcs output) to 3 workers and suspends the dynamic
// scale-in of its scalable target (a stand-in: moto's CloudFormation does
// not make one, see TestDeployOnMoto); --release resumes it and parks the
// fleet. Moto starts tasks the moment the count is set, so the wait is
// for nothing here; on AWS it is the Fargate start.
func TestPlannerFleetOnMoto(t *testing.T) {
	srv := stackbed.StartMoto(t)
	net := srv.Network(t)
	s := stackbed.DeployOnMoto(t, srv, deploy.Template, map[string]string{
		"SourceBucket": srv.Bucket(t, testbed.Name("source")), "DestinationBucket": srv.Bucket(t, testbed.Name("dest")),
		"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s3clone:test", "VpcId": net.VpcID, "Subnets": strings.Join(net.Subnets, ","),
	})
	bin, err := testbed.BuildBinaries(false)
	if err != nil {
		t.Fatal(err)
	}
	planner := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(bin, "planner"), args...)
		cmd.Env = srv.Environ()
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	scaleECS, led := s.Outputs["ScaleEcs"], s.Outputs["LedgerUrl"]
	if tg, ok := s.ScalableTarget(t); !ok || (tg.SuspendedState != nil && aws.ToBool(tg.SuspendedState.DynamicScalingInSuspended)) {
		t.Fatalf("the stack's scalable target before: %+v (registered %v), want scale-in running", tg, ok)
	}

	out, code := planner("fleet", "--scale-ecs", scaleECS, "--ledger", led, "--workers", "3", "--wait", "30s")
	if code != 0 || !strings.Contains(out, "3 running of 3 desired (was 0 desired)") || !strings.Contains(out, "--release") {
		t.Fatalf("planner fleet: exit %d\n%s", code, out)
	}
	if svc := s.Service(t); svc.DesiredCount != 3 {
		t.Errorf("desired count %d after planner fleet --workers 3", svc.DesiredCount)
	}
	if tg, _ := s.ScalableTarget(t); tg.SuspendedState == nil || !aws.ToBool(tg.SuspendedState.DynamicScalingInSuspended) ||
		aws.ToInt32(tg.MinCapacity) != 0 || aws.ToInt32(tg.MaxCapacity) != 16 {
		t.Errorf("scalable target while warm: %+v; want scale-in suspended, bounds 0..16 kept", tg)
	}
	// The hold is in the stack's ledger, where status shows it.
	if out, code := planner("status", "--ledger", led); code != 0 || !strings.Contains(out, "dynamic scale-in held suspended by planner fleet") {
		t.Errorf("planner status while planner fleet holds the fleet: exit %d\n%s", code, out)
	}
	// More than the stack's MaxWorkers would be set back by Application Auto Scaling.
	if out, code := planner("fleet", "--scale-ecs", scaleECS, "--ledger", led, "--workers", "17"); code != 2 || !strings.Contains(out, "at most 16") {
		t.Errorf("planner fleet --workers 17 over MaxWorkers 16: exit %d\n%s", code, out)
	}

	out, code = planner("fleet", "--scale-ecs", scaleECS, "--ledger", led, "--release", "--workers", "0")
	if code != 0 || !strings.Contains(out, "dynamic scale-in resumed") || !strings.Contains(out, "desired count 0 (was 3)") {
		t.Fatalf("planner fleet --release: exit %d\n%s", code, out)
	}
	if tg, _ := s.ScalableTarget(t); tg.SuspendedState != nil && aws.ToBool(tg.SuspendedState.DynamicScalingInSuspended) {
		t.Errorf("scale-in still suspended after --release: %+v", tg.SuspendedState)
	}
	if svc := s.Service(t); svc.DesiredCount != 0 {
		t.Errorf("desired count %d after --release --workers 0", svc.DesiredCount)
	}
	if out, _ := planner("status", "--ledger", led); strings.Contains(out, "held suspended") {
		t.Errorf("planner status still shows a hold after --release:\n%s", out)
	}

	// planner task finds the stack by name and reads its outputs; a stack
	// that is not there is bad usage. (Moto cannot run the stack's planner
	// task definition, TestDeployOnMoto says why: the task itself is tested
	// in internal/fleet's TestRunTask.)
	if out, code := planner("task", "--stack", "no-such-stack", "--", "status"); code != 2 || !strings.Contains(out, "--stack no-such-stack") {
		t.Errorf("planner task --stack no-such-stack: exit %d\n%s", code, out)
	}
	if out, code := planner("task", "--stack", s.Name, "--poll", "100ms", "--", "status"); code == 2 || !strings.Contains(out, "run the planner task ("+s.Outputs["PlannerTaskDefinition"]) {
		t.Errorf("planner task --stack %s: exit %d, want it to have read the stack's outputs and asked ECS for its planner task\n%s", s.Name, code, out)
	}
}

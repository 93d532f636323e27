package apply_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
)

// failingGets is a parameter store whose Get of one name fails with err (when set).
type failingGets struct {
	params.Store
	name string
	err  error
}

func (f *failingGets) Get(ctx context.Context, name string) (params.Parameter, error) {
	if name == f.name && f.err != nil {
		return params.Parameter{}, f.err
	}
	return f.Store.Get(ctx, name)
}

// throttled is what the SSM store returns when Parameter Store throttles a read: the AWS error,
// wrapped with the operation, marked neither transient nor permanent.
var throttled = fmt.Errorf(`ssm: get "/iac/vpc/core/runtime": %w`,
	errors.New("operation error SSM: GetParameter, https response error StatusCode: 400, RequestID: 8b1c, api error ThrottlingException: Rate exceeded"))

// A transient Parameter Store error while the references are read is retried (the message is
// redelivered); only what the config gets wrong fails the deployment.
func TestApplyInterpolationErrors(t *testing.T) {
	t.Parallel()
	const resolved = `{"service_discovery_vpc_id":"vpc-0a1b2c","tags":{"Environment":"prod"}}`
	tests := []struct {
		name    string
		runtime string // vpc/core's runtime, "" = none
		err     error  // of the runtime's Get, nil = the store's answer
		want    pipeline.Action
		failed  string // in deployment.failed
	}{
		{name: "throttled", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: throttled, want: pipeline.Retry},
		{name: "timed out", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: fmt.Errorf("ssm: get: %w", context.DeadlineExceeded), want: pipeline.Retry},
		{name: "marked transient", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: pipeline.Transient(errors.New("connection reset")), want: pipeline.Retry},
		{name: "refused for good", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: &params.InvalidError{Name: "/iac/vpc/core/runtime", Reason: "invalid name"}, want: pipeline.Ack, failed: "invalid name"},
		{name: "no runtime", want: pipeline.Ack, failed: "vpc/core has no runtime yet"},
		{name: "no such key", runtime: `{"private_subnet_ids":[]}`, want: pipeline.Ack, failed: `has no key "vpc_id"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true})
			if tt.runtime != "" {
				s.putRuntime(t, "/iac/vpc/core/runtime", tt.runtime)
			}
			w := s.worker(s.runner)
			w.Params = func(string) (params.Store, error) {
				return &failingGets{Store: s.params, name: "/iac/vpc/core/runtime", err: tt.err}, nil
			}
			out, action, err := wt.Process(t, s.q, w.Handle, s.planned(t, 100+i, ecs, 1, resolved))
			if action != tt.want {
				t.Fatalf("action %v (%v), %v; want %v", action, err, types(out), tt.want)
			}
			if s.runner.applies.Load() != 0 {
				t.Errorf("terraform ran %d times", s.runner.applies.Load())
			}
			if tt.failed == "" {
				if len(out) != 0 || !pipeline.IsTransient(err) {
					t.Errorf("%v, err %v: want nothing published and a transient error", types(out), err)
				}
				return
			}
			wt.ValidateAll(t, out)
			if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
				t.Fatalf("%v, want one deployment.failed", types(out))
			}
			if p := wt.PayloadOf[message.DeploymentFailed](t, out[0]); p.Stage != "apply" || !strings.Contains(p.Error, tt.failed) {
				t.Errorf("failed %+v, want an error containing %q", p, tt.failed)
			}
		})
	}
}

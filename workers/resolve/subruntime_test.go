package resolve_test

import (
	"slices"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// TestFunctionRuntimeChange: a lambda writes one runtime per function
// (/iac/lambda/<function>/runtime, the sub_runtimes rule of karma.json); a change made there
// outside Karma redeploys exactly the components that read that function's changed keys.
func TestFunctionRuntimeChange(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"iac/prod/lambda/shop/config.json":         `{"functions": {"checkout": {}, "cart": {}}}`,
		"iac/prod/serverless-api/shop/config.json": `{"api_name": "shop"}`, // reads every function's arn
		"iac/prod/ecs-service/audit/config.json":   `{"checkout_runtime_path": "/iac/lambda/checkout/runtime"}`,
	})
	tests := []struct {
		function string
		keys     []string
		want     []string
	}{
		{"cart", []string{"arn"}, []string{"prod/serverless-api/shop"}},
		{"checkout", []string{"function_name"}, []string{"prod/ecs-service/audit"}},
		{"checkout", []string{"arn"}, []string{"prod/ecs-service/audit", "prod/serverless-api/shop"}},
		{"cart", []string{"function_name"}, nil},
	}
	for i, tt := range tests {
		s := newStage(t, repo, nil)
		out := s.handle(t, runtimeDetected(t, 200+i, "prod", message.ComponentRef{Type: "lambda", Nickname: tt.function}, tt.keys))
		resolved := wt.ByType(out, message.TypeChangeResolved)
		if len(resolved) != 1 {
			t.Fatalf("%s %v: %d change.resolved, want 1", tt.function, tt.keys, len(resolved))
		}
		roots := wt.PayloadOf[message.ChangeResolved](t, resolved[0]).Roots
		slices.Sort(roots)
		if !slices.Equal(roots, tt.want) {
			t.Errorf("change of %v in /iac/lambda/%s/runtime: roots %v, want %v", tt.keys, tt.function, roots, tt.want)
		}
	}
	s := newStage(t, repo, nil)
	in := runtimeDetected(t, 299, "prod", message.ComponentRef{Type: "lambda", Nickname: "nobody"}, []string{"arn"})
	if _, action, err := wt.Process(t, s.q, s.w.Handle, in); action != pipeline.DeadLetter || err == nil {
		t.Errorf("a runtime no component writes: action %v (%v), want a dead letter", action, err)
	}
}

package terraform

// envsize_test.go: Lambda refuses a function whose environment variables take more than 4 KB
// (4,096 bytes, measured as the JSON of the variables, keys included; a quota that cannot be
// raised), at apply: the apply stops half-way, the function not created or not updated. The
// webhook function's KARMA_WEBHOOK_SECRETS (one secret per repository, read from Secrets
// Manager) and plan's, apply's and drift's terraform_env are bounded by nothing else, so a
// precondition of every function (functions.tf) measures its environment at plan. These tests
// measure each function's environment as Lambda does and check the precondition against it,
// to the byte.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const lambdaEnvQuota = 4096

// lambdaEnvBytes is the size Lambda measures: the variables as compact JSON, in bytes (Lambda's
// JSON does not escape <, > and &, which no value here holds).
func lambdaEnvBytes(t tb, env map[string]cty.Value, what string) int {
	t.Helper()
	m := map[string]string{}
	for k, v := range env {
		s, err := str(v, what+" "+k)
		if err != nil {
			t.Fatal(err)
		}
		m[k] = s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return b.Len() - 1 // the encoder's newline
}

// withWebhookSecrets is this folder with vars, the webhook secret's value being secrets.
func withWebhookSecrets(t tb, vars map[string]cty.Value, secrets string) *module {
	t.Helper()
	m, err := loadModule(moduleDir(), vars)
	if err != nil {
		t.Fatal(err)
	}
	const key = "data.aws_secretsmanager_secret_version.webhook"
	insts := mustInstances(t, m, key)
	if len(insts) != 1 {
		t.Fatalf("%s: %d instances, want 1", key, len(insts))
	}
	attrs := m.standIn(insts[0].addr).AsValueMap()
	attrs["secret_string"] = cty.StringVal(secrets)
	m.resVals[key] = cty.TupleVal([]cty.Value{cty.ObjectVal(attrs)})
	return m
}

// functionEnvs are the environment variables of every function of m, by KARMA_STAGE.
func functionEnvs(t tb, m *module) map[string]map[string]cty.Value {
	t.Helper()
	out := map[string]map[string]cty.Value{}
	for _, in := range mustInstances(t, m, "aws_lambda_function.stage") {
		v, ok, err := m.arg(in, "environment", "variables")
		if err != nil || !ok {
			t.Fatalf("%s: environment.variables: %v", in.addr, err)
		}
		out[in.key] = v.AsValueMap()
	}
	return out
}

// failedPreconditions are the error messages of the preconditions of inst that do not hold.
func failedPreconditions(t tb, m *module, inst instance) []string {
	t.Helper()
	var out []string
	for _, lc := range inst.block.Body.Blocks {
		if lc.Type != "lifecycle" {
			continue
		}
		for _, pc := range lc.Body.Blocks {
			if pc.Type != "precondition" {
				continue
			}
			ok, err := m.eval(pc.Body.Attributes["condition"].Expr, &inst)
			if err != nil {
				t.Fatalf("%s: precondition: %v", inst.addr, err)
			}
			if !ok.IsKnown() || ok.True() {
				continue
			}
			msg, err := m.eval(pc.Body.Attributes["error_message"].Expr, &inst)
			if err != nil {
				t.Fatalf("%s: error_message: %v", inst.addr, err)
			}
			s, err := str(msg, inst.addr+" error_message")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
	}
	return out
}

func functionInstance(t tb, m *module, stage string) instance {
	t.Helper()
	for _, in := range mustInstances(t, m, "aws_lambda_function.stage") {
		if in.key == stage {
			return in
		}
	}
	t.Fatalf("no function %s", stage)
	return instance{}
}

// TestWebhookSecretsAreBoundedByLambdasQuota: webhook secrets that bring the webhook
// function's environment to 4,096 bytes as Lambda measures them pass the plan; one byte more is
// refused at plan, naming the quota, the input (webhook_secret_arn) and the room left for it.
// Before, such a plan passed and Lambda refused the function at apply.
func TestWebhookSecretsAreBoundedByLambdasQuota(t *testing.T) {
	secrets := func(n int) string { return `{"github:acme/infra":"` + strings.Repeat("s", n) + `"}` }
	webhookEnv := func(m *module) map[string]cty.Value {
		env, ok := functionEnvs(t, m)["webhook"]
		if !ok {
			t.Fatal("no webhook function")
		}
		return env
	}
	base := lambdaEnvBytes(t, webhookEnv(withWebhookSecrets(t, testVars(), secrets(0))), "webhook")
	fit := lambdaEnvQuota - base

	m := withWebhookSecrets(t, testVars(), secrets(fit))
	if n := lambdaEnvBytes(t, webhookEnv(m), "webhook"); n != lambdaEnvQuota {
		t.Fatalf("the test's secrets make %d bytes, want %d", n, lambdaEnvQuota)
	}
	if failed := failedPreconditions(t, m, functionInstance(t, m, "webhook")); len(failed) > 0 {
		t.Errorf("an environment of exactly %d bytes is refused: %s", lambdaEnvQuota, strings.Join(failed, "; "))
	}

	m = withWebhookSecrets(t, testVars(), secrets(fit+1))
	if n := lambdaEnvBytes(t, webhookEnv(m), "webhook"); n != lambdaEnvQuota+1 {
		t.Fatalf("the test's secrets make %d bytes, want %d", n, lambdaEnvQuota+1)
	}
	failed := failedPreconditions(t, m, functionInstance(t, m, "webhook"))
	if len(failed) == 0 {
		t.Fatalf("webhook secrets making the webhook function's environment %d bytes pass the plan: Lambda refuses over %d, at apply", lambdaEnvQuota+1, lambdaEnvQuota)
	}
	// The room left for the secrets: their JSON string's content, escaped (each " counts 2).
	room := fmt.Sprintf("leaves %d for the webhook secrets of webhook_secret_arn", len(secrets(fit))+strings.Count(secrets(fit), `"`))
	msg := strings.Join(failed, "; ")
	for _, want := range []string{"4 KB (4096 bytes", room} {
		if !strings.Contains(msg, want) {
			t.Errorf("the plan's error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, strings.Repeat("s", 20)) {
		t.Errorf("the plan's error shows the secrets: %q", msg)
	}
	// The other functions do not carry the secrets.
	for stage, env := range functionEnvs(t, m) {
		if _, ok := env["KARMA_WEBHOOK_SECRETS"]; ok && stage != "webhook" {
			t.Errorf("function %s has KARMA_WEBHOOK_SECRETS", stage)
		}
	}
}

// TestFunctionEnvironmentsAreMeasuredAsLambdaDoes: the size the module computes for each
// function is the size Lambda measures, in bytes (a non-ASCII value included), and a
// terraform_env too large for Lambda is refused at plan for the functions that carry it,
// naming it.
func TestFunctionEnvironmentsAreMeasuredAsLambdaDoes(t *testing.T) {
	vars := testVars()
	vars["git_subdir"] = cty.StringVal("конфигурация/€") // 2 and 3 bytes a character
	m := withWebhookSecrets(t, vars, `{"github:acme/infra":"s3cr3t","gitlab:*":"x"}`)
	computed, err := m.local("function_env_bytes")
	if err != nil {
		t.Fatal(err)
	}
	envs := functionEnvs(t, m)
	for _, stage := range slices.Sorted(maps.Keys(envs)) {
		want := lambdaEnvBytes(t, envs[stage], stage)
		got := mustInt(t, computed.GetAttr(stage), "local.function_env_bytes."+stage)
		if got != int64(want) {
			t.Errorf("function %s: the module measures its environment as %d bytes, Lambda as %d", stage, got, want)
		}
		if failed := failedPreconditions(t, m, functionInstance(t, m, stage)); len(failed) > 0 {
			t.Errorf("function %s (%d bytes): refused: %s", stage, want, strings.Join(failed, "; "))
		}
	}

	vars = testVars()
	vars["terraform_env"] = cty.MapVal(map[string]cty.Value{"HOME": cty.StringVal("/tmp"), "TF_CLI_ARGS_init": cty.StringVal(strings.Repeat("-x ", 1400))})
	m = withWebhookSecrets(t, vars, `{"github:acme/infra":"s3cr3t"}`)
	for stage := range functionEnvs(t, m) {
		failed := failedPreconditions(t, m, functionInstance(t, m, stage))
		switch stage {
		case "plan", "apply", "drift":
			if msg := strings.Join(failed, "; "); !strings.Contains(msg, "over Lambda's quota of 4 KB") || !strings.Contains(msg, "terraform_env") {
				t.Errorf("function %s with a terraform_env of 4,200 bytes: the plan says %q, want Lambda's quota and terraform_env named", stage, msg)
			}
		default:
			if len(failed) > 0 {
				t.Errorf("function %s does not carry terraform_env, and is refused: %s", stage, strings.Join(failed, "; "))
			}
		}
	}
}

// TestCreatedNeptuneEndpointIsMeasuredAtPlan: the endpoint of a Neptune cluster created here
// is known only after apply; the size is measured with its longest form instead, so that the
// precondition is decided at plan, not half-way through apply.
func TestCreatedNeptuneEndpointIsMeasuredAtPlan(t *testing.T) {
	vars := testVars()
	vars["create_neptune"] = cty.True
	m := withWebhookSecrets(t, vars, `{"github:acme/infra":"s3cr3t"}`)
	measured, err := m.local("function_env_measured")
	if err != nil {
		t.Fatal(err)
	}
	envs := functionEnvs(t, m)
	n := 0
	for _, stage := range slices.Sorted(maps.Keys(envs)) {
		if _, ok := envs[stage]["KARMA_NEPTUNE_ENDPOINT"]; !ok {
			continue
		}
		n++
		ep, err := str(measured.GetAttr(stage).GetAttr("KARMA_NEPTUNE_ENDPOINT"), stage)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ep, "aws_neptune_cluster.karma[0].endpoint") {
			t.Errorf("function %s: its size is measured with the created cluster's endpoint, known only after apply: %s", stage, ep)
		}
		if !strings.Contains(ep, ".cluster-xxxxxxxxxxxx.") {
			t.Errorf("function %s: measured with the endpoint %q, want <cluster>.cluster-<12 characters>.<region>.neptune.<dns suffix>", stage, ep)
		}
	}
	if n == 0 {
		t.Fatal("no function has KARMA_NEPTUNE_ENDPOINT")
	}
}

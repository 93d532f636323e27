package terraform

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder collects what a check reports instead of failing the test; fatal errors still fail it.
type recorder struct {
	*testing.T
	msgs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Logf(string, ...any) {}

// mutated copies this folder's .tf files to a temporary folder with old replaced by new in
// file (exactly once: a mutation that does not apply is a broken test).
func mutated(t *testing.T, file, old, new string) string {
	t.Helper()
	dir := t.TempDir()
	paths, err := filepath.Glob(filepath.Join(moduleDir(), "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if filepath.Base(p) == file {
			if n := strings.Count(s, old); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want once", file, old, n)
			}
			s = strings.Replace(s, old, new, 1)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mutation is a plausible mistake in terraform/ and what the check must say about it.
type mutation struct {
	name, file, old, new string
	want                 string // a substring of one reported problem
}

// TestChecksBite: each check fails on a copy of this folder with one plausible mistake, and
// says what is wrong (the unchanged folder passes: the tests above).
func TestChecksBite(t *testing.T) {
	routing := []mutation{
		{"a type routed to resolve is missing", "main.tf",
			`resolve       = ["change.detected", "change.superseded",`, `resolve       = ["change.detected",`,
			"rule karma-to-resolve (aws_cloudwatch_event_rule.stage[\"resolve\"]): detail-types differ from pipeline.Routes for stage resolve: missing change.superseded"},
		{"a type routed to a stage that does not consume it", "main.tf",
			`plan          = ["deployment.recorded"]`, `plan          = ["deployment.recorded", "change.detected"]`,
			"not routed there by pipeline.Routes: change.detected"},
		{"audit filtered by type", "main.tf",
			`{ audit = jsonencode({ source = ["karma"] }) }`, `{ audit = jsonencode({ source = ["karma"], "detail-type" = ["change.detected"] }) }`,
			"rule karma-to-audit (aws_cloudwatch_event_rule.stage[\"audit\"]): detail-type [change.detected], want every type"},
		{"a rule delivering to the wrong queue", "events.tf",
			`arn            = aws_sqs_queue.stage[each.key].arn`, `arn            = aws_sqs_queue.dlq[each.key].arn`,
			`rule karma-to-plan: delivers to queue "karma-test-plan-dlq", want "karma-test-plan"`},
		{"a rule on the default bus", "events.tf",
			"  event_bus_name = aws_cloudwatch_event_bus.karma.name\n  event_pattern  = each.value", "  event_pattern = each.value",
			"no rule karma-to-graph-write on the karma bus"},
		{"a queue without its DLQ", "queues.tf",
			`deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn`, `deadLetterTargetArn = aws_sqs_queue.events_dlq.arn`,
			"queue karma-test-apply: dead-letter queue karma-test-eventbridge-dlq, want karma-test-apply-dlq"},
		{"a queue consumed by the wrong function", "functions.tf",
			`function_name           = aws_lambda_function.stage[each.key].arn`, `function_name           = aws_lambda_function.stage["audit"].arn`,
			`queue karma-test-plan is consumed by aws_lambda_function.stage["audit"], whose KARMA_STAGE is "audit": want "plan"`},
		{"no function for a stage", "main.tf",
			`["ingest", "resolve", "graph-write", "plan", "apply", "audit", "promote"]`, `["ingest", "resolve", "graph-write", "apply", "audit", "promote"]`,
			"queue karma-test-plan: consumed by 0 functions"},
		{"Parameter Store events under another prefix", "events.tf",
			`name = [{ prefix = "${var.param_prefix}/" }]`, `name = [{ prefix = var.param_prefix }]`,
			`want detail.name prefix "/iac/"`},
		{"Parameter Store events to the wrong queue", "events.tf",
			`arn       = aws_sqs_queue.stage["ingest"].arn`, `arn       = aws_sqs_queue.stage["resolve"].arn`,
			"no rule on the default bus delivers aws.ssm events to the karma-test-ingest queue"},
	}
	env := []mutation{
		{"a stage without the repository", "functions.tf",
			`{ KARMA_GIT_URL = var.git_url, KARMA_GIT_BRANCH = var.git_branch }`, `{ KARMA_GIT_BRANCH = var.git_branch }`,
			`function aws_lambda_function.stage["resolve"] (KARMA_STAGE=resolve) lacks KARMA_GIT_URL, which its code path reads (config.Config.Git.URL at shared/app/`},
		{"plan not marked as reading the repository", "main.tf",
			`plan          = { repo = true,`, `plan          = { repo = false,`,
			`function aws_lambda_function.stage["plan"] (KARMA_STAGE=plan) lacks KARMA_GIT_URL`},
		{"the EFS checkout back", "functions.tf",
			"    f.repo ? merge(", "    f.repo ? { KARMA_REPO = \"/mnt/config/repo\" } : {},\n    f.repo ? merge(",
			`function aws_lambda_function.stage["graph-write"] sets KARMA_REPO, which terraform/ leaves alone: a local clone: the functions fetch KARMA_GIT_URL instead`},
		{"the wrong table", "functions.tf",
			`KARMA_CHANGE_SET_TABLE = aws_dynamodb_table.change_sets.name`, `KARMA_CHANGE_SET_TABLE = aws_dynamodb_table.seen.name`,
			`function aws_lambda_function.stage["apply"]: KARMA_CHANGE_SET_TABLE names table karma-test-seen (aws_dynamodb_table.seen), want karma-test-change-sets`},
		{"no queue prefix", "functions.tf",
			`f.dlq || f.depths ? { KARMA_QUEUE_PREFIX = local.queue_prefix } : {},`, `{},`,
			`function aws_lambda_function.stage["audit"] (KARMA_STAGE=audit) lacks KARMA_QUEUE_PREFIX, which its code path reads (config.Config.QueuePrefix at shared/app/`},
		{"a stage name cmd/lambda does not serve", "functions.tf",
			`KARMA_STAGE     = name`, `KARMA_STAGE     = replace(name, "-", "_")`,
			`function aws_lambda_function.stage["graph-write"]: KARMA_STAGE="graph_write", want "graph-write"`},
		{"a variable the code reads, set nowhere", "functions.tf",
			`var.git_token_user == null ? {} : { KARMA_GIT_TOKEN_USER = var.git_token_user },`, ``,
			`function aws_lambda_function.stage["plan"] (KARMA_STAGE=plan) lacks KARMA_GIT_TOKEN_USER, which its code path reads (config.Config.Git`},
		{"a variable the code reads, set for another function", "functions.tf",
			`f.neptune != "" ? {`, `name == "resolve" ? {`,
			`function aws_lambda_function.stage["graph-write"] (KARMA_STAGE=graph-write) lacks KARMA_NEPTUNE_ENDPOINT, which its code path reads (config.Config.NeptuneEndpoint at shared/app/stores.go`},
		{"a stage left without its store", "main.tf",
			`"graph-write" = { repo = true, terraform = false, neptune = "rw",`, `"graph-write" = { repo = true, terraform = false, neptune = "",`,
			`function aws_lambda_function.stage["graph-write"] (KARMA_STAGE=graph-write) lacks KARMA_NEPTUNE_ENDPOINT`},
	}
	publishing := []mutation{
		{"the webhook may publish what it does not build", "main.tf",
			`webhook       = ["git.pushed"]`, `webhook       = ["git.pushed", "deployment.applied"]`,
			"function webhook: its role may put events of detail-type [deployment.applied git.pushed] on the bus, want exactly [git.pushed]"},
		{"the audit function may publish", "main.tf",
			`audit         = []`, `audit         = ["change.detected"]`,
			"function audit publishes nothing, but its role allows events:PutEvents"},
	}
	retention := []mutation{
		{"a stage queue with SQS's default retention", "queues.tf",
			"message_retention_seconds  = 1209600", "message_retention_seconds  = 345600",
			"queue karma-test-apply keeps a message 345600 s, want 1209600"},
		{"an age alarm that fires for a working stage", "queues.tf",
			"stalled_after_seconds = 21600", "stalled_after_seconds = 600",
			"queue karma-test-audit: the age alarm's threshold 600 s, want over 1800 s"},
	}
	scheduled := []mutation{
		{"Lambda's default retries for the scheduled functions", "events.tf",
			"maximum_retry_attempts       = 0", "maximum_retry_attempts       = 2",
			`aws_lambda_function_event_invoke_config.scheduled["drift"]: maximum_retry_attempts = 2, want 0`},
		{"a scheduled run kept for 6 hours", "events.tf",
			"maximum_event_age_in_seconds = local.scheduled_event_age[each.key]", "maximum_event_age_in_seconds = 21600",
			`aws_lambda_function_event_invoke_config.scheduled["promote"]: maximum_event_age_in_seconds = 21600, over the interval of its schedule "rate(1 minute)"`},
		{"a schedule's undelivered runs let into no dead-letter queue", "queues.tf",
			"    aws_cloudwatch_event_rule.drift[*].arn,\n", "",
			`aws_cloudwatch_event_target.drift[0]: its dead-letter queue aws_sqs_queue.events_dlq does not let the rule aws_cloudwatch_event_rule.drift[0] send to it`},
		{"the scheduled functions' alarms on another metric", "events.tf",
			`metric_name         = "Errors"`, `metric_name         = "Throttles"`,
			`function aws_lambda_function.stage["reconcile"] (schedule "rate(5 minutes)") has no alarm on its Errors`},
	}
	queues := []mutation{
		{"the queue denies' policy attached to no role", "iam.tf",
			"  role       = aws_iam_role.function[each.key].name\n  policy_arn = aws_iam_policy.queues.arn", "  role       = aws_iam_role.function[each.key].name\n  policy_arn = aws_iam_policy.guard.arn",
			`function apply: its role does not deny sqs:SendMessage on aws_sqs_queue.stage["plan"].arn: only the bus feeds a stage queue`},
	}
	iamTF, err := os.ReadFile(filepath.Join(moduleDir(), "iam.tf"))
	if err != nil {
		t.Fatal(err)
	}
	const guardHead = "data \"aws_iam_policy_document\" \"guard\" {\n"
	guardBody, _, _ := strings.Cut(strings.SplitN(string(iamTF), guardHead, 2)[1], "\n}\n")
	sizes := []mutation{
		{"param_prefix as long as SSM allows", "variables.tf",
			"length(var.param_prefix) <= 64", "length(var.param_prefix) <= 1011",
			`role aws_iam_role.function["apply"]: inline policies: `},
		{"a KMS key for every parameter", "variables.tf",
			"length(var.ssm_kms_key_arns) <= 8", "length(var.ssm_kms_key_arns) <= 64",
			`role aws_iam_role.function["api"]: inline policies: `},
		// Bounded then only by the functions' environment (Lambda's 4 KB, functions.tf): some
		// 3,400 characters, far too long for the policies.
		{"no bound on <name_prefix>-<environment>", "events.tf",
			`length("${local.prefix}-parameter-store-to-ingest") <= 64`, "true",
			`role aws_iam_role.function["api"]: inline policies: `},
		{"the queue denies added to the guard policy", "iam.tf",
			"data \"aws_iam_policy_document\" \"queues\" {\n", "data \"aws_iam_policy_document\" \"queues\" {\n" + guardBody + "\n",
			"managed policy aws_iam_policy.queues (data.aws_iam_policy_document.queues): "},
	}
	names := []mutation{
		{"a name_prefix ending in '-'", "variables.tf",
			`condition     = can(regex("^[a-z](-?[a-z0-9])*$", var.name_prefix))`, `condition     = can(regex("^[a-z][a-z0-9-]*$", var.name_prefix))`,
			`with name_prefix = "karma-", aws_neptune_cluster.karma[0].cluster_identifier is "karma--test-graph"`},
		{"<name_prefix>-<environment> two characters longer", "events.tf",
			`length("${local.prefix}-parameter-store-to-ingest") <= 64`, `length("${local.prefix}-parameter-store-to-ingest") <= 66`,
			`aws_cloudwatch_event_rule.parameter_store.name is "knnnnnn-keeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-parameter-store-to-ingest" (66 characters): AWS takes at most 64`},
	}
	for _, m := range names {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkNames(r, mutated(t, m.file, m.old, m.new))
			expectReported(t, r, m.want)
		})
	}
	for _, m := range scheduled {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			d := load(r, mutated(t, m.file, m.old, m.new))
			checkScheduled(r, d)
			checkEventTargetDeadLetters(r, d)
			expectReported(t, r, m.want)
		})
	}
	for _, m := range queues {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkQueueDenies(r, load(r, mutated(t, m.file, m.old, m.new)))
			expectReported(t, r, m.want)
		})
	}
	for _, m := range sizes {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkPolicySizes(r, mutated(t, m.file, m.old, m.new))
			expectReported(t, r, m.want)
		})
	}
	code, err := readLambdaCode(filepath.Join(moduleDir(), ".."))
	if err != nil {
		t.Fatal(err)
	}
	built, err := builtMessageTypes(filepath.Join(moduleDir(), ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range publishing {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkPublishing(r, load(r, mutated(t, m.file, m.old, m.new)), built)
			expectReported(t, r, m.want)
		})
	}
	for _, m := range retention {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkQueueRetention(r, load(r, mutated(t, m.file, m.old, m.new)))
			expectReported(t, r, m.want)
		})
	}
	for _, m := range routing {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkRouting(r, load(r, mutated(t, m.file, m.old, m.new)))
			expectReported(t, r, m.want)
		})
	}
	for _, m := range env {
		t.Run(m.name, func(t *testing.T) {
			r := &recorder{T: t}
			checkEnvironment(r, load(r, mutated(t, m.file, m.old, m.new)), code)
			expectReported(t, r, m.want)
		})
	}
}

func expectReported(t *testing.T, r *recorder, want string) {
	t.Helper()
	for _, msg := range r.msgs {
		if strings.Contains(msg, want) {
			return
		}
	}
	t.Errorf("the check did not report %q; it reported:\n  %s", want, strings.Join(r.msgs, "\n  "))
}

package model_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/model"
)

// ruleCase is a small prod repository, the edges the rules must draw (edgeLines format) and the
// diagnostics they must report (substrings of Diagnostic.String(), in sorted order).
type ruleCase struct {
	name  string
	files map[string]string
	edges []string
	diags []string
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{}
			for k, v := range c.files {
				if !strings.HasPrefix(k, "karma.json") {
					k = "iac/prod/" + k + "/config.json"
				}
				files[k] = v
			}
			res := build(t, files)
			if got := edgeLines(res.Graph, "prod"); !reflect.DeepEqual(got, c.edges) {
				t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.edges, "\n"))
			}
			got := diagLines(res)
			if len(got) != len(c.diags) {
				t.Fatalf("diagnostics:\n%s\nwant %d:\n%s", strings.Join(got, "\n"), len(c.diags), strings.Join(c.diags, "\n"))
			}
			for i, want := range c.diags {
				if !strings.Contains(got[i], want) {
					t.Errorf("diagnostic %d:\n %s\nwant it to contain\n %s", i, got[i], want)
				}
			}
		})
	}
}

func TestAttributeRule(t *testing.T) {
	t.Parallel()
	zone := `{"zone_name":"Example.COM."}`
	runRuleCases(t, []ruleCase{
		{name: "equal after lower-casing and dropping the trailing dot",
			files: map[string]string{"route53-zone/main": zone, "serverless-site/www": `{"enable_custom_domain":true,"route53_zone_name":"example.com"}`},
			edges: []string{`serverless-site/www -> route53-zone/main attribute route53-zone-by-name "/route53_zone_name" zone_id`}},
		{name: "condition false: the module does not look the zone up",
			files: map[string]string{"route53-zone/main": zone, "serverless-site/www": `{"enable_custom_domain":false,"route53_zone_name":"example.com"}`}},
		{name: "condition key absent counts as false, as the modules default it",
			files: map[string]string{"route53-zone/main": zone, "serverless-site/www": `{"route53_zone_name":"example.com"}`}},
		{name: "no zone of that name: a warning, the module may find it outside Karma",
			files: map[string]string{"route53-zone/main": zone, "serverless-api/api": `{"enable_custom_domain":true,"route53_zone_name":"example.org."}`},
			diags: []string{`iac/prod/serverless-api/api/config.json: warning [missing-reference] at /route53_zone_name: route53_zone_name "example.org": no route53-zone in prod has that zone_name (rule route53-zone-by-name)`}},
		{name: "two zones of one name are ambiguous",
			files: map[string]string{"route53-zone/a": zone, "route53-zone/b": `{"zone_name":"example.com"}`,
				"serverless-site/www": `{"enable_custom_domain":true,"route53_zone_name":"example.com"}`},
			diags: []string{`error [ambiguous-reference] at /route53_zone_name: route53_zone_name "example.com" matches the zone_name of 2 components: prod/route53-zone/a, prod/route53-zone/b (rule route53-zone-by-name)`}},
		{name: "a value that is not a string",
			files: map[string]string{"route53-zone/main": zone, "serverless-site/www": `{"enable_custom_domain":true,"route53_zone_name":["example.com"]}`},
			diags: []string{`warning [bad-reference] at /route53_zone_name: route53_zone_name should be a string naming a route53-zone by its zone_name, found an array`}},
		{name: "a rule of karma.json: nested key, number condition, required, ordering only",
			files: map[string]string{
				"karma.json": `{"references":{"attributes":[{"name":"queue-by-name","key":"queue","type":"sqs-queue","attribute":"queue_name",
					"normalize":["trim-space"],"when":{"key":"version","equals":2},"consumes":[],"required":true}]}}`,
				"sqs-queue/jobs":    `{"queue_name":"jobs "}`,
				"ecs-service/one":   `{"workers":[{"version":2,"queue":" jobs"},{"version":1,"queue":"ignored"}]}`,
				"ecs-service/other": `{"workers":[{"version":2.0,"queue":"nope"}]}`},
			edges: []string{`ecs-service/one -> sqs-queue/jobs attribute queue-by-name "/workers/0/queue" `},
			diags: []string{`iac/prod/ecs-service/other/config.json: error [missing-reference] at /workers/0/queue: queue "nope": no sqs-queue in prod has that queue_name (rule queue-by-name): the rule is required`}},
	})
}

func TestRuntimePathRule(t *testing.T) {
	t.Parallel()
	runRuleCases(t, []ruleCase{
		{name: "a *_runtime_path value names the component",
			files: map[string]string{"vpc/core": `{}`, "grafana/ops": `{"vpc_runtime_path":"/iac/vpc/core/runtime"}`},
			edges: []string{`grafana/ops -> vpc/core runtime-path runtime-path "/vpc_runtime_path" *`}},
		{name: "another prefix is not Karma's",
			files: map[string]string{"vpc/core": `{}`, "grafana/ops": `{"vpc_runtime_path":"/other/vpc/core/runtime"}`},
			diags: []string{`warning [bad-reference] at /vpc_runtime_path: vpc_runtime_path: "/other/vpc/core/runtime" is not /iac/<type>/<nickname>/runtime`}},
		{name: "a config path is not a runtime path",
			files: map[string]string{"vpc/core": `{}`, "grafana/ops": `{"vpc_runtime_path":"/iac/vpc/core/config"}`},
			diags: []string{`vpc_runtime_path: "/iac/vpc/core/config" is not /iac/<type>/<nickname>/runtime`}},
		{name: "a missing target is an error, like any reference",
			files: map[string]string{"grafana/ops": `{"clickhouse_runtime_path":"/iac/clickhouse/main/runtime"}`},
			diags: []string{`error [missing-reference] at /clickhouse_runtime_path: runtime-path references clickhouse/main (runtime-path), which is not defined in prod`}},
		{name: "the prefix of karma.json and a rule for any key",
			files: map[string]string{
				"karma.json":  `{"prefix":"/platform","references":{"runtime_paths":[{"name":"any-path","key_suffix":"","consumes":["vpc_id"]}]}}`,
				"vpc/core":    `{}`,
				"grafana/ops": `{"network":{"source":"/platform/vpc/core/runtime"},"note":"/iac/vpc/core/runtime","old_runtime_path":"/iac/vpc/core/runtime"}`},
			edges: []string{`grafana/ops -> vpc/core runtime-path any-path "/network/source" vpc_id`},
			diags: []string{`warning [bad-reference] at /old_runtime_path: old_runtime_path: "/iac/vpc/core/runtime" is not /platform/<type>/<nickname>/runtime: not treated as a reference (rule runtime-path)`}},
		{name: "an interpolated path is left to the interpolation",
			files: map[string]string{"vpc/core": `{}`, "grafana/ops": `{"vpc_runtime_path":"/iac/vpc/${vpc/core.runtime.name}/runtime"}`},
			edges: []string{`grafana/ops -> vpc/core interpolation ${vpc/core.runtime.name} "/vpc_runtime_path" name`}},
	})
}

func TestSameNicknameRule(t *testing.T) {
	t.Parallel()
	runRuleCases(t, []ruleCase{
		{name: "serverless-api reads the lambda and the s3-bucket of its nickname",
			files: map[string]string{"serverless-api/shop": `{}`, "lambda/shop": `{}`, "s3-bucket/shop": `{}`, "lambda/other": `{}`},
			edges: []string{
				`serverless-api/shop -> lambda/shop same-nickname api-lambda "" arn`,
				`serverless-api/shop -> s3-bucket/shop same-nickname api-openapi-bucket "" bucket_name`,
			}},
		{name: "no component of that nickname: no edge, nothing to report",
			files: map[string]string{"serverless-api/shop": `{}`, "lambda/other": `{}`}},
		{name: "a default disabled and one added in karma.json",
			files: map[string]string{
				"karma.json":          `{"references":{"disable":["api-openapi-bucket"],"same_nickname":[{"name":"site-bucket","from":"serverless-site","to":"s3-bucket"}]}}`,
				"serverless-api/shop": `{}`, "s3-bucket/shop": `{}`, "serverless-site/shop": `{}`},
			edges: []string{`serverless-site/shop -> s3-bucket/shop same-nickname site-bucket "" *`}},
	})
}

func TestSubRuntimeRule(t *testing.T) {
	t.Parallel()
	fns := `{"functions":{"echo":{"runtime":"python3.12"},"time":{}}}`
	runRuleCases(t, []ruleCase{
		{name: "every kind of reference to a function's runtime reaches the lambda defining it",
			files: map[string]string{"lambda/tools": fns,
				"ecs-service/a": `{"lambda_nickname":"echo","time_runtime_path":"/iac/lambda/time/runtime","url":"${lambda/echo.runtime.url}"}`},
			edges: []string{
				`ecs-service/a -> lambda/tools inferred lambda_nickname "/lambda_nickname" * via /iac/lambda/echo/runtime`,
				`ecs-service/a -> lambda/tools interpolation ${lambda/echo.runtime.url} "/url" url via /iac/lambda/echo/runtime`,
				`ecs-service/a -> lambda/tools runtime-path runtime-path "/time_runtime_path" * via /iac/lambda/time/runtime`,
			}},
		{name: "the lambda itself still wins over a function of its name",
			files: map[string]string{"lambda/echo": fns, "ecs-service/a": `{"lambda_nickname":"echo"}`},
			edges: []string{`ecs-service/a -> lambda/echo inferred lambda_nickname "/lambda_nickname" *`}},
		{name: "two lambdas defining one function",
			files: map[string]string{"lambda/a": fns, "lambda/b": `{"functions":{"echo":{}}}`},
			diags: []string{`iac/prod/lambda/b/config.json: error [runtime-conflict] at /functions/echo: /iac/lambda/echo/runtime is written by both prod/lambda/a and prod/lambda/b (rule lambda-functions)`}},
		{name: "a function named like another lambda component",
			files: map[string]string{"lambda/echo": `{}`, "lambda/tools": fns},
			diags: []string{`iac/prod/lambda/tools/config.json: error [runtime-conflict] at /functions/echo: /iac/lambda/echo/runtime is written by prod/lambda/echo as its own runtime and by prod/lambda/tools for echo (rule lambda-functions)`}},
		{name: "functions that is not an object, a function name no parameter can hold",
			files: map[string]string{"lambda/a": `{"functions":["echo"]}`, "lambda/b": `{"functions":{"bad name":{}}}`},
			diags: []string{
				`iac/prod/lambda/a/config.json: warning [bad-reference] at /functions: functions: want an object whose keys name the runtimes this lambda writes (rule lambda-functions), found an array`,
				`iac/prod/lambda/b/config.json: warning [bad-reference] at /functions/bad name: "bad name" cannot name a runtime parameter (/iac/lambda/bad name/runtime)`,
			}},
		{name: "a reference to an undefined function is missing",
			files: map[string]string{"lambda/tools": fns, "ecs-service/a": `{"lambda_nickname":"nope"}`},
			diags: []string{`error [missing-reference] at /lambda_nickname: lambda_nickname references lambda/nope (inferred), which is not defined in prod`}},
	})
}

// TestKarmaJSONRules: karma.json's rules are read strictly and every bad one is reported at once,
// each with its JSON pointer; the repository is then not loaded.
func TestKarmaJSONRules(t *testing.T) {
	t.Parallel()
	cases := []struct{ karma, want string }{
		{`{"references":{"attributes":[{"name":"z","key":"k","type":"t","attribute":"a","normalise":["lower"]}]}}`,
			`karma.json: json: unknown field "normalise"`},
		{`{"references":{"same_nickname":[{"name":"a","from":"api","to":"Lambda"}],"sub_runtimes":[{"name":"b","type":"lambda"}]}}`,
			"karma.json: at /references/same_nickname/0/to: \"Lambda\" is not a component type name (lower-case letters, digits, '-' and '_')\n" +
				"at /references/sub_runtimes/0/each_key_of: want a config key, found an empty string"},
	}
	for _, c := range cases {
		_, err := model.Load(writeRepo(t, map[string]string{"karma.json": c.karma}), model.LoadOptions{})
		if err == nil || !strings.HasSuffix(err.Error(), c.want) {
			t.Errorf("karma.json %s:\n got %v\nwant ...%s", c.karma, err, c.want)
		}
	}
}

package terraform

// names_test.go: every name this module builds from <name_prefix>-<environment> is one AWS
// takes, for every value the variables' validations and the preconditions accept. A name AWS
// refuses fails `terraform apply` half-way (the resources before it created), where plan and
// validate said nothing: the bounds and patterns belong in the validations.

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// awsName is AWS's rule for one name argument: its longest, and the characters and shape it
// takes.
type awsName struct {
	max     int
	pattern *regexp.Regexp
	rule    string
}

var (
	// RDS/Neptune identifiers: a letter first, letters, digits and hyphens, no two hyphens in a
	// row and none last.
	rdsIdentifier = regexp.MustCompile(`^[A-Za-z](?:-?[A-Za-z0-9])*$`)
	words         = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// awsNames: the name arguments of the resource types of this module, with AWS's limits. A
// resource type with a name argument missing here fails the test until it is added.
var awsNames = map[string]awsName{
	"aws_lambda_function.function_name":             {64, words, "letters, digits, - and _"},
	"aws_iam_role.name":                             {64, regexp.MustCompile(`^[\w+=,.@-]+$`), `letters, digits and +=,.@_-`},
	"aws_iam_policy.name":                           {128, regexp.MustCompile(`^[\w+=,.@-]+$`), `letters, digits and +=,.@_-`},
	"aws_iam_role_policy.name":                      {128, regexp.MustCompile(`^[\w+=,.@-]+$`), `letters, digits and +=,.@_-`},
	"aws_sqs_queue.name":                            {80, regexp.MustCompile(`^[A-Za-z0-9_-]+(\.fifo)?$`), "letters, digits, - and _"},
	"aws_cloudwatch_event_rule.name":                {64, regexp.MustCompile(`^[.\-_A-Za-z0-9]+$`), "letters, digits and .-_"},
	"aws_cloudwatch_event_bus.name":                 {256, regexp.MustCompile(`^[/.\-_A-Za-z0-9]+$`), "letters, digits and /.-_"},
	"aws_cloudwatch_log_group.name":                 {512, regexp.MustCompile(`^[.\-_/#A-Za-z0-9]+$`), "letters, digits and .-_/#"},
	"aws_cloudwatch_metric_alarm.alarm_name":        {255, regexp.MustCompile(`^[^\x00-\x1f]+$`), "printable"},
	"aws_dynamodb_table.name":                       {255, regexp.MustCompile(`^[A-Za-z0-9_.-]{3,}$`), "3 or more letters, digits and _.-"},
	"aws_neptune_cluster.cluster_identifier":        {63, rdsIdentifier, "a letter first, then letters, digits and single hyphens, not last"},
	"aws_neptune_cluster.final_snapshot_identifier": {255, rdsIdentifier, "a letter first, then letters, digits and single hyphens, not last"},
	"aws_neptune_cluster_instance.identifier":       {63, rdsIdentifier, "a letter first, then letters, digits and single hyphens, not last"},
	"aws_neptune_subnet_group.name":                 {255, regexp.MustCompile(`^[a-z0-9 ._-]+$`), "lower-case letters, digits, spaces and ._-"},
	"aws_security_group.name":                       {255, regexp.MustCompile(`^[\x20-\x7e]+$`), "ASCII"},
	"aws_efs_file_system.creation_token":            {64, regexp.MustCompile(`^.+$`), "1 to 64 characters"},
	"aws_apigatewayv2_api.name":                     {128, regexp.MustCompile(`^.+$`), "1 to 128 characters"},
	"aws_apigatewayv2_stage.name":                   {128, regexp.MustCompile(`^.+$`), "1 to 128 characters"},
	"aws_cloudwatch_event_target.target_id":         {64, regexp.MustCompile(`^[.\-_A-Za-z0-9]+$`), "letters, digits and .-_"},
	"aws_lambda_permission.statement_id":            {100, regexp.MustCompile(`^[A-Za-z0-9_-]+$`), "letters, digits, - and _"},
	"aws_cloudwatch_event_rule.description":         {512, regexp.MustCompile(`^.*$`), "at most 512 characters"},
	// References to a name made elsewhere in the module, not names.
	"aws_lambda_event_source_mapping.function_name":         {},
	"aws_lambda_permission.function_name":                   {},
	"aws_lambda_function_event_invoke_config.function_name": {},
	"aws_neptune_cluster_instance.cluster_identifier":       {},
}

// nameArgs are the arguments that name a resource (or, description, are limited like one).
var nameArgs = []string{"name", "function_name", "alarm_name", "cluster_identifier", "final_snapshot_identifier", "identifier", "creation_token", "target_id", "statement_id", "description"}

// descriptionsUnchecked: resource types whose description has no limit a name could reach here.
var descriptionsUnchecked = map[string]bool{
	"aws_iam_role": true, "aws_iam_policy": true, "aws_security_group": true, "aws_apigatewayv2_api": true, "aws_cloudwatch_event_bus": true,
	"aws_cloudwatch_metric_alarm": true, "aws_lambda_function": true, "aws_cloudwatch_event_target": true, "aws_apigatewayv2_stage": true,
	"aws_vpc_security_group_ingress_rule": true, "aws_apigatewayv2_integration": true,
}

func TestNamesAreOnesAWSTakes(t *testing.T) {
	checkNames(t, moduleDir())
}

// checkNames builds every name of the folder dir with the longest <name_prefix>-<environment>
// and param_prefix the module accepts, and with each awkward value its validations accept,
// and reports each AWS would refuse.
func checkNames(t tb, dir string) {
	t.Helper()
	cases := worstCases(t, dir)
	base := cases[len(cases)-1].vars // Neptune and EFS created: every name there is
	type trial struct {
		what string
		vars map[string]cty.Value
	}
	trials := []trial{{"the longest names", base}}
	// Values a user could give that the patterns of names may not take.
	for _, v := range []struct{ name, value string }{
		{"name_prefix", "karma-"}, {"name_prefix", "kar--ma"}, {"name_prefix", "Karma"}, {"name_prefix", "karma_x"},
		{"environment", "prod-"}, {"environment", "pr--od"}, {"environment", "Prod"}, {"environment", "prod.eu"},
	} {
		vars := testVars()
		vars["create_neptune"], vars["efs_access_point_arn"] = cty.True, cty.NullVal(cty.String)
		vars[v.name] = cty.StringVal(v.value)
		ok, err := acceptedBy(dir, vars, v.name)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			trials = append(trials, trial{fmt.Sprintf("%s = %q", v.name, v.value), vars})
		}
	}
	for _, tr := range trials {
		m, err := loadModule(dir, tr.vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range slices.Sorted(maps.Keys(m.blocks)) {
			if strings.HasPrefix(key, "data.") {
				continue
			}
			typ := strings.SplitN(key, ".", 2)[0]
			insts, err := m.instances(key)
			if err != nil {
				t.Fatal(err)
			}
			for _, arg := range nameArgs {
				if m.blocks[key].Body.Attributes[arg] == nil || (arg == "description" && descriptionsUnchecked[typ]) {
					continue
				}
				rule, ok := awsNames[typ+"."+arg]
				if !ok {
					if tr.what == trials[0].what {
						t.Errorf("%s.%s: names_test.go knows no AWS rule for it: add one to awsNames", key, arg)
					}
					continue
				}
				if rule.pattern == nil {
					continue
				}
				for _, in := range insts {
					v, _, err := m.arg(in, arg)
					if err != nil {
						t.Fatal(err)
					}
					if !v.IsWhollyKnown() || v.IsNull() {
						continue
					}
					s, err := str(v, in.addr+"."+arg)
					if err != nil {
						t.Fatal(err)
					}
					if len(s) > rule.max || !rule.pattern.MatchString(s) {
						t.Errorf("with %s, %s.%s is %q (%d characters): AWS takes at most %d, %s", tr.what, in.addr, arg, s, len(s), rule.max, rule.rule)
					}
				}
			}
		}
	}
}

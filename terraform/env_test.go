package terraform

import (
	"fmt"
	"go/ast"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/dynamo"
)

// floor is what each stage cannot do without, stated by hand from shared/app (the stores each
// stage opens) and cmd/lambda (what its entry points refuse to start without). The walk of the
// code (lambdacode_test.go) must find at least these, so that it cannot silently lose track;
// whatever more it finds is required too.
var floor = map[string][]string{
	"resolve":     {"KARMA_GIT_URL", "KARMA_CHANGE_SET_TABLE", "KARMA_IDEMPOTENCY_TABLE", "KARMA_PREFIX"},
	"graph-write": {"KARMA_GIT_URL", "KARMA_IDEMPOTENCY_TABLE", "KARMA_NEPTUNE_ENDPOINT"},
	"plan":        {"KARMA_GIT_URL", "KARMA_CHANGE_SET_TABLE", "KARMA_IDEMPOTENCY_TABLE", "KARMA_PREFIX", "KARMA_TERRAFORM", "KARMA_WORK_DIR"},
	"apply":       {"KARMA_GIT_URL", "KARMA_CHANGE_SET_TABLE", "KARMA_IDEMPOTENCY_TABLE", "KARMA_PREFIX", "KARMA_TERRAFORM", "KARMA_WORK_DIR"},
	"audit":       {"KARMA_AUDIT_TABLE"},
	"ingest":      {"KARMA_ENV", "KARMA_IDEMPOTENCY_TABLE", "KARMA_PREFIX"},
	"reconcile":   {"KARMA_ENV", "KARMA_IDEMPOTENCY_TABLE", "KARMA_PREFIX"},
	"drift":       {"KARMA_ENV", "KARMA_GIT_URL", "KARMA_CHANGE_SET_TABLE", "KARMA_IDEMPOTENCY_TABLE", "KARMA_PREFIX", "KARMA_TERRAFORM", "KARMA_WORK_DIR"},
	"promote":     {"KARMA_CHANGE_SET_TABLE"},
	"webhook":     {"KARMA_WEBHOOK_SECRETS", "KARMA_IDEMPOTENCY_TABLE", "KARMA_AUDIT_TABLE"},
	"api":         {"KARMA_GIT_URL", "KARMA_CHANGE_SET_TABLE", "KARMA_AUDIT_TABLE", "KARMA_NEPTUNE_ENDPOINT"},
}

// entryFloor: every function its stage and the bus it publishes to; an SQS pipeline stage the
// queue prefix (it dead-letters poison messages itself).
func entryFloor(stage string) []string {
	base := []string{"KARMA_STAGE", "KARMA_EVENT_BUS"}
	switch stage {
	case "webhook", "reconcile", "drift", "api", "promote":
		return base
	}
	return append(base, "KARMA_QUEUE_PREFIX")
}

// notSetByTerraform: variables the Lambda binary reads that terraform/ leaves to their
// defaults, and why.
var notSetByTerraform = map[string]string{
	"KARMA_CONFIG":            "no configuration file: the functions are configured by their environment",
	"KARMA_BACKEND":           "every store is on AWS, cmd/lambda's default",
	"KARMA_PARAMS_BACKEND":    "aws (cmd/lambda's default)",
	"KARMA_QUEUE_BACKEND":     "aws (cmd/lambda's default)",
	"KARMA_GRAPH_BACKEND":     "aws (cmd/lambda's default)",
	"KARMA_AUDIT_BACKEND":     "aws (cmd/lambda's default)",
	"KARMA_STATE_BACKEND":     "aws (cmd/lambda's default)",
	"KARMA_REPO":              "a local clone: the functions fetch KARMA_GIT_URL instead",
	"KARMA_HOME":              "the embedded state file: no store is embedded",
	"KARMA_PARAM_PREFIX":      "the former name of KARMA_PREFIX, which terraform/ sets",
	"KARMA_NEPTUNE_NAMESPACE": "separates test graphs sharing a cluster; production uses none",
	"KARMA_CACHE_DIR":         "its default, /tmp/karma, is Lambda's writable place (the repository cache and each commit's modules)",
	"KARMA_MODULES_DIR":       "the modules come from each commit's own modules folder in the repository cache",
	"KARMA_GIT_TOKEN_FILE":    "the token comes from the Secrets Manager secret in KARMA_GIT_TOKEN_SECRET, which shared/app writes to a 0600 file under /tmp when the repository is first opened",
	"KARMA_GIT_SSH_KEY_FILE":  "terraform/ offers an HTTPS token from Secrets Manager, not SSH deploy keys",
	"KARMA_GIT_KNOWN_HOSTS":   "SSH only (see KARMA_GIT_SSH_KEY_FILE)",
	"KARMA_GIT_WRITE":         "none (the default): proposals are not made through the functions",
}

// pendingInLambda: variables terraform/ sets that cmd/lambda does not read yet, and who reads them.
var pendingInLambda = map[string]string{}

// TestFunctionEnvironmentIsWhatLambdaReads: each function's KARMA_STAGE is one cmd/lambda
// serves; each has every variable the code path of its stage reads (lambdacode_test.go), but
// those left to their defaults for a stated reason; terraform/ sets no KARMA_* variable the
// binary does not read, and every one it reads is set for some function or left out for a
// reason; the values name this module's tables, bus and repository.
func TestFunctionEnvironmentIsWhatLambdaReads(t *testing.T) {
	code, err := readLambdaCode(filepath.Join(moduleDir(), ".."))
	if err != nil {
		t.Fatal(err)
	}
	checkEnvironment(t, load(t, moduleDir()), code)
}

func checkEnvironment(t tb, d *deployment, code *lambdaCode) {
	t.Helper()
	reads := maps.Clone(code.reads)
	for fn, r := range externalReads {
		at, err := literalArgIn(filepath.Join(code.root, r.pkg), r.name)
		if err != nil {
			t.Fatal(err)
		}
		if at == "" {
			t.Errorf("externalReads: %s does not read %s (lambdacode_test.go)", fn, r.name)
		}
	}
	stages := map[string]bool{}
	for _, v := range code.stages {
		stages[v] = true
	}

	setAnywhere := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(d.functions)) {
		fn := d.functions[name]
		stage := fn.envString(t, "KARMA_STAGE")
		if stage != name {
			t.Errorf("function %s: KARMA_STAGE=%q, want %q", fn.inst.addr, stage, name)
		}
		if !stages[stage] {
			t.Errorf("function %s: KARMA_STAGE=%q is none of the stages cmd/lambda serves (%s)", fn.inst.addr, stage,
				strings.Join(slices.Sorted(maps.Keys(stages)), ", "))
			continue
		}
		set := map[string]bool{}
		for v := range fn.env {
			set[v] = true
		}
		uses := code.uses(stage, set)
		for v, where := range uses {
			if _, ok := reads[v]; !ok {
				reads[v] = where
			}
		}
		for _, v := range append(entryFloor(stage), floor[stage]...) {
			if _, ok := uses[v]; !ok {
				t.Errorf("stage %s: the walk of the Lambda's code (lambdacode_test.go) did not find %s, which the stage needs: it lost track of the code", stage, v)
			}
		}
		for _, v := range slices.Sorted(maps.Keys(uses)) {
			if _, ok := fn.env[v]; ok {
				continue
			}
			if _, ok := notSetByTerraform[v]; ok {
				continue
			}
			t.Errorf("function %s (KARMA_STAGE=%s) lacks %s, which its code path reads (%s)", fn.inst.addr, stage, v, uses[v])
		}
		for _, v := range slices.Sorted(maps.Keys(fn.env)) {
			setAnywhere[v] = true
			if !karmaVarRE.MatchString(v) {
				continue // terraform_env: for terraform itself (HOME, TF_*)
			}
			if why, ok := notSetByTerraform[v]; ok {
				t.Errorf("function %s sets %s, which terraform/ leaves alone: %s (notSetByTerraform)", fn.inst.addr, v, why)
				continue
			}
			if _, ok := reads[v]; ok {
				continue
			}
			if _, ok := pendingInLambda[v]; ok {
				continue
			}
			t.Errorf("function %s sets %s, which the Lambda binary never reads", fn.inst.addr, v)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(reads)) {
		if _, skipped := notSetByTerraform[v]; !setAnywhere[v] && !skipped {
			t.Errorf("the Lambda binary reads %s (%s); terraform/ sets it for no function (set it in functions.tf, or say why not in notSetByTerraform)", v, reads[v])
		}
	}
	for _, v := range slices.Sorted(maps.Keys(notSetByTerraform)) {
		if _, ok := reads[v]; !ok {
			t.Errorf("notSetByTerraform lists %s, which the Lambda binary does not read", v)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(pendingInLambda)) {
		switch _, read := reads[v]; {
		case !setAnywhere[v]:
			t.Errorf("pendingInLambda lists %s, which terraform/ does not set", v)
		case !read:
			t.Logf("terraform/ sets %s, which cmd/lambda does not read yet: %s", v, pendingInLambda[v])
		}
	}

	// The values: the tables, bus and repository of this module.
	prefix, err := d.m.local("prefix")
	if err != nil {
		t.Fatal(err)
	}
	p, err := str(prefix, "local.prefix")
	if err != nil {
		t.Fatal(err)
	}
	tables := dynamo.DefaultTableNames(p)
	wantTable := map[string]string{"KARMA_AUDIT_TABLE": tables.Audit, "KARMA_CHANGE_SET_TABLE": tables.ChangeSets, "KARMA_IDEMPOTENCY_TABLE": tables.Seen}
	wantVar := map[string]string{"KARMA_GIT_URL": "git_url", "KARMA_GIT_TOKEN_SECRET": "git_token_secret_arn", "KARMA_GIT_SUBDIR": "git_subdir",
		"KARMA_GIT_TOKEN_USER": "git_token_user", "KARMA_GIT_BRANCH": "git_branch", "KARMA_ENV": "environment", "KARMA_PREFIX": "param_prefix"}
	for _, name := range slices.Sorted(maps.Keys(d.functions)) {
		fn := d.functions[name]
		for v, table := range wantTable {
			ref, ok := fn.env[v]
			if !ok {
				continue
			}
			if in, ok := d.follow(t, ref, "aws_dynamodb_table", "name", fn.inst.addr+" "+v); ok {
				if got := d.mustString(t, in, "name"); got != table {
					t.Errorf("function %s: %s names table %s (%s), want %s (dynamo.DefaultTableNames)", fn.inst.addr, v, got, in.addr, table)
				}
			}
		}
		for v, variable := range wantVar {
			if _, ok := fn.env[v]; !ok {
				continue
			}
			want, err := str(d.m.vars[variable], "var."+variable)
			if err != nil {
				t.Fatal(err)
			}
			if got := fn.envString(t, v); got != want {
				t.Errorf("function %s: %s=%q, want var.%s (%q)", fn.inst.addr, v, got, variable, want)
			}
		}
		if _, ok := fn.env["KARMA_NEPTUNE_ENDPOINT"]; ok {
			host, err := str(d.m.vars["neptune_endpoint"], "var.neptune_endpoint")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fn.envString(t, "KARMA_NEPTUNE_ENDPOINT"), fmt.Sprintf("wss://%s:8182/gremlin", host); got != want {
				t.Errorf("function %s: KARMA_NEPTUNE_ENDPOINT=%q, want %q (neptune.Open)", fn.inst.addr, got, want)
			}
		}
	}
}

// literalArgIn returns where a call in the non-test Go files of dir passes the string literal
// s ("" if none does).
func literalArgIn(dir, s string) (string, error) {
	fset := token.NewFileSet()
	files, err := parseDir(fset, dir)
	if err != nil {
		return "", err
	}
	at := ""
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || at != "" {
				return at == ""
			}
			for _, a := range call.Args {
				if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, _ := strconv.Unquote(lit.Value); v == s {
						at = fset.Position(lit.Pos()).String()
					}
				}
			}
			return true
		})
	}
	return at, nil
}

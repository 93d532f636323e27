package terraform

// policysize_test.go: IAM refuses a role whose inline policies total more than 10,240
// characters, a managed policy of more than 6,144 and a role trust policy of more than 2,048
// (IAM and AWS STS quotas; IAM does not count white space). Neither terraform validate nor
// plan sees it: the documents' JSON holds ARNs known only at apply, and a policy too long fails
// `terraform apply` half-way, its role created without it. So this test renders every
// aws_iam_policy_document as the provider does, for the longest inputs this module accepts and
// AWS allows, and checks each document against the limit of what it is used as.
//
// The rendering follows the provider's JSON (internal/service/iam/policy_model.go): Version,
// then each statement's Sid, Effect, Action, NotAction, Resource, NotResource, Principal,
// NotPrincipal, Condition; actions, resources and identifiers as sets (duplicates once), a
// single one as a string; a condition's values in order, one as a string; conditions grouped
// by test and variable. It is measured as compact JSON (Go's encoder, which escapes <, > and &
// as six characters each: never fewer than IAM counts), spaces inside strings included.
//
// The worst case, an upper bound of what a deployment can render:
//   - <name_prefix>-<environment> at the longest the module accepts: environment at the
//     longest its validation allows, name_prefix the longest its validation and the module's
//     preconditions then allow (a bound is required: the test fails on an unbounded one);
//     param_prefix likewise; ssm_kms_key_arns as many keys as its validation allows;
//   - the partition and the region at the longest AWS has, together though no region of that
//     partition is that long (aws-us-gov: 10; us-isof-south-1: 15), a 12-digit account;
//   - given ARNs at AWS's longest: the Git token's secret with a 512-character name (Secrets
//     Manager's maximum), key ARNs of multi-Region keys, a Neptune resource id of
//     cluster- and 26 characters, EFS ids of 17 hex digits;
//   - every function enabled, IAM auth on Neptune, and each of: an existing or a created
//     Neptune cluster, an existing or a created EFS access point.
//
// Resource and data source attributes, which the evaluator (module_test.go) leaves as
// symbolic names, are made concrete by worstValue: a reference to one it does not know fails
// the test until it is added there.

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

const (
	roleInlineLimit  = 10240 // all of a role's inline policies together
	managedLimit     = 6144  // one managed policy
	trustPolicyLimit = 2048  // a role's trust policy (the default quota; it can be raised to 4,096)
	efsPolicyLimit   = 20000 // an EFS file system policy
	sqsPolicyLimit   = 8192  // an SQS queue policy, in bytes

	worstPartition = "aws-us-gov"
	worstRegion    = "us-isof-south-1"
	worstAccount   = "123456789012"
	// A Neptune cluster's resource id (neptune-db ARNs), an EFS file system's and access
	// point's id.
	worstNeptuneResourceID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	worstFileSystemID      = "fs-0123456789abcdef0"
	worstAccessPointID     = "fsap-0123456789abcdef0"
)

// policyUse is what an attribute holding a policy document's JSON makes of it.
type policyUse struct {
	kind  string // "inline" (summed per role), "managed", "trust", "resource"
	limit int    // 0: unknown
}

// policyUses: every attribute of this module that takes an aws_iam_policy_document's json.
// A document used anywhere else fails the test until its limit is written here. An SQS queue
// policy takes at most 8,192 bytes (Amazon SQS policy quotas; ours are ASCII).
var policyUses = map[string]policyUse{
	"aws_iam_role_policy.policy":        {"inline", roleInlineLimit},
	"aws_iam_policy.policy":             {"managed", managedLimit},
	"aws_iam_role.assume_role_policy":   {"trust", trustPolicyLimit},
	"aws_efs_file_system_policy.policy": {"resource", efsPolicyLimit},
	"aws_sqs_queue_policy.policy":       {"resource", sqsPolicyLimit},
}

func TestIAMPoliciesFitIAMsLimits(t *testing.T) {
	for _, line := range checkPolicySizes(t, moduleDir()) {
		t.Log(line)
	}
}

// checkPolicySizes renders every policy document of the folder dir in each worst case and
// reports each one over its limit; it returns the margins, one line per policy (its
// largest over the worst cases).
func checkPolicySizes(t tb, dir string) []string {
	t.Helper()
	type measured struct {
		what        string
		size, limit int
		scenario    string
	}
	largest := map[string]measured{}
	for _, sc := range worstCases(t, dir) {
		m, err := loadModule(dir, sc.vars)
		if err != nil {
			t.Fatal(err)
		}
		w := newWorst(m)
		sizes, err := w.policySizes()
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		for key, s := range sizes {
			if prev, ok := largest[key]; !ok || s.size > prev.size {
				largest[key] = measured{s.what, s.size, s.limit, sc.name}
			}
		}
	}
	var lines []string
	for _, key := range slices.Sorted(maps.Keys(largest)) {
		s := largest[key]
		if s.size > s.limit {
			t.Errorf("%s: %d characters in the worst case (%s), over IAM's limit of %d by %d: IAM would refuse it at apply", s.what, s.size, s.scenario, s.limit, s.size-s.limit)
		}
		lines = append(lines, fmt.Sprintf("%-60s %6d of %6d, margin %6d (%4.1f%%)  [%s]", s.what, s.size, s.limit, s.limit-s.size,
			100*float64(s.limit-s.size)/float64(s.limit), s.scenario))
	}
	return lines
}

type worstCase struct {
	name string
	vars map[string]cty.Value
}

// worstCases are testVars with every input that ends up in a policy at its longest, once for
// each way of giving Neptune and EFS.
func worstCases(t tb, dir string) []worstCase {
	t.Helper()
	s := cty.StringVal
	repeat := func(c string) func(int) cty.Value {
		return func(n int) cty.Value { return s("k" + strings.Repeat(c, n-1)) }
	}
	vars := testVars()
	var envLen, prefixLen, paramLen, keys int
	envLen, vars["environment"] = longestAccepted(t, dir, vars, "environment", repeat("e"))
	prefixLen, vars["name_prefix"] = longestAccepted(t, dir, vars, "name_prefix", repeat("n"))
	paramLen, vars["param_prefix"] = longestAccepted(t, dir, vars, "param_prefix", func(n int) cty.Value { return s("/" + strings.Repeat("p", n-1)) })
	keys, vars["ssm_kms_key_arns"] = longestAccepted(t, dir, vars, "ssm_kms_key_arns", func(n int) cty.Value {
		l := make([]cty.Value, n)
		for i := range l {
			l[i] = s(fmt.Sprintf("arn:%s:kms:%s:%s:key/mrk-%032x", worstPartition, worstRegion, worstAccount, i))
		}
		return cty.ListVal(l)
	})
	vars["git_token_secret_arn"] = s(fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-AbCdEf", worstPartition, worstRegion, worstAccount, strings.Repeat("s", 512)))
	vars["neptune_cluster_resource_id"] = s(worstNeptuneResourceID)
	vars["neptune_iam_auth"] = cty.True
	for _, flag := range []string{"enable_api", "enable_webhook", "enable_ingest_function", "enable_drift_function"} {
		vars[flag] = cty.True
	}
	what := fmt.Sprintf("<p> %d characters, param_prefix %d, %d KMS keys", envLen+1+prefixLen, paramLen, keys)
	var out []worstCase
	for _, neptune := range []bool{false, true} {
		for _, efs := range []bool{false, true} {
			v := maps.Clone(vars)
			v["create_neptune"] = cty.BoolVal(neptune)
			name := what + "; Neptune " + map[bool]string{false: "given", true: "created"}[neptune] + ", EFS "
			if efs {
				v["efs_access_point_arn"] = cty.NullVal(cty.String)
				name += "created"
			} else {
				v["efs_access_point_arn"] = s(fmt.Sprintf("arn:%s:elasticfilesystem:%s:%s:access-point/%s", worstPartition, worstRegion, worstAccount, worstAccessPointID))
				name += "given"
			}
			out = append(out, worstCase{name, v})
		}
	}
	return out
}

// longestAccepted is the largest n (from 2) such that variable name = mk(n) passes its
// validations and every precondition of the module, the other variables from base, and
// mk(n). A variable these do not bound (mk(4096) accepted) is reported: its worst case is
// unknown.
func longestAccepted(t tb, dir string, base map[string]cty.Value, name string, mk func(int) cty.Value) (int, cty.Value) {
	t.Helper()
	accepted := func(n int) bool {
		vars := maps.Clone(base)
		vars[name] = mk(n)
		ok, err := acceptedBy(dir, vars, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	const unbounded = 4096
	if !accepted(2) {
		t.Fatalf("variable %s: %#v is refused: the test's values do not fit its validation", name, mk(2))
	}
	if accepted(unbounded) {
		t.Errorf("variable %s accepts a value of %d and more (characters or elements): nothing bounds what it adds to the IAM policies; give it a maximum in its validation", name, unbounded)
		return 2, mk(2)
	}
	lo, hi := 2, unbounded // lo accepted, hi refused
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if accepted(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, mk(lo)
}

// acceptedBy says whether the validations of variable name and every lifecycle precondition of
// the module's resources hold with vars, as terraform plan would check them (an unknown result
// is not a refusal).
func acceptedBy(dir string, vars map[string]cty.Value, name string) (bool, error) {
	m, err := loadModule(dir, vars)
	if err != nil {
		return false, err
	}
	holds := func(expr hcl.Expression, inst *instance) (bool, error) {
		v, err := m.eval(expr, inst)
		if err != nil {
			return false, err
		}
		return !v.IsKnown() || v.IsNull() || v.True(), nil
	}
	for _, cond := range m.validations[name] {
		if ok, err := holds(cond, nil); err != nil || !ok {
			return false, err
		}
	}
	for _, key := range slices.Sorted(maps.Keys(m.blocks)) {
		for _, lc := range m.blocks[key].Body.Blocks {
			if lc.Type != "lifecycle" {
				continue
			}
			for _, pc := range lc.Body.Blocks {
				if pc.Type != "precondition" || pc.Body.Attributes["condition"] == nil {
					continue
				}
				insts, known, err := m.instancesOf(key)
				if err != nil {
					return false, err
				}
				if !known {
					continue
				}
				for _, in := range insts {
					if ok, err := holds(pc.Body.Attributes["condition"].Expr, &in); err != nil || !ok {
						return false, err
					}
				}
			}
		}
	}
	return true, nil
}

// worst makes the symbolic attribute values of a module's resources and data sources concrete.
type worst struct {
	m     *module
	names *regexp.Regexp // a symbolic attribute value inside a string
	done  map[string]string
}

func newWorst(m *module) *worst {
	var blocks []string
	for k := range m.blocks {
		blocks = append(blocks, regexp.QuoteMeta(k))
	}
	attrs := slices.Clone(m.attrNames)
	// Longest first, so that an alternative is not cut short by its own prefix.
	byLen := func(a, b string) int { return len(b) - len(a) }
	slices.SortFunc(blocks, byLen)
	slices.SortFunc(attrs, byLen)
	return &worst{m: m, done: map[string]string{}, names: regexp.MustCompile(`(` + strings.Join(blocks, "|") + `)((?:\[(?:"[^"]*"|[0-9]+)\])?)\.(` + strings.Join(attrs, "|") + `)\b`)}
}

// realize replaces every symbolic attribute value in s by its worst-case value.
func (w *worst) realize(s string) (string, error) {
	if r, ok := w.done[s]; ok {
		return r, nil
	}
	if !strings.Contains(s, ".") { // no symbolic value: "*", an action
		return s, nil
	}
	var firstErr error
	out := w.names.ReplaceAllStringFunc(s, func(sym string) string {
		v, err := w.value(sym)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	if firstErr == nil {
		w.done[s] = out
	}
	return out, firstErr
}

func (w *worst) value(sym string) (string, error) {
	sub := w.names.FindStringSubmatch(sym)
	key, index, attr := sub[1], sub[2], sub[3]
	typ := strings.SplitN(strings.TrimPrefix(key, "data."), ".", 2)[0]
	arn := func(service, resource string) string {
		return "arn:" + worstPartition + ":" + service + ":" + worstRegion + ":" + worstAccount + ":" + resource
	}
	// arg is an argument of the instance sym names, itself made concrete.
	arg := func(name string) (string, error) {
		insts, err := w.m.instances(key)
		if err != nil {
			return "", err
		}
		for _, in := range insts {
			if in.addr == key+index {
				v, ok, err := w.m.arg(in, name)
				if err != nil {
					return "", err
				}
				if !ok {
					return "", fmt.Errorf("%s: %s is not set", in.addr, name)
				}
				s, err := str(v, in.addr+"."+name)
				if err != nil {
					return "", err
				}
				return w.realize(s)
			}
		}
		return "", fmt.Errorf("no instance %s", key+index)
	}
	named := func(format string, argName string) (string, error) {
		n, err := arg(argName)
		return fmt.Sprintf(format, n), err
	}
	switch typ + "." + attr {
	case "aws_caller_identity.account_id":
		return worstAccount, nil
	case "aws_partition.partition":
		return worstPartition, nil
	case "aws_region.name", "aws_region.region":
		return worstRegion, nil
	case "aws_sqs_queue.arn":
		return named(arn("sqs", "%s"), "name")
	case "aws_cloudwatch_log_group.arn": // the provider's arn has no :* at the end
		return named(arn("logs", "log-group:%s"), "name")
	case "aws_cloudwatch_event_bus.arn":
		return named(arn("events", "event-bus/%s"), "name")
	case "aws_cloudwatch_event_bus.name", "aws_cloudwatch_event_rule.name":
		return arg("name")
	case "aws_cloudwatch_event_rule.arn": // rule/<name> on the default bus, rule/<bus>/<name> on another
		rule := "rule/"
		if bus, err := arg("event_bus_name"); err == nil && bus != "default" {
			rule += bus + "/"
		} else if err != nil && !strings.Contains(err.Error(), "is not set") {
			return "", err
		}
		return named(arn("events", rule+"%s"), "name")
	case "aws_dynamodb_table.arn":
		return named(arn("dynamodb", "table/%s"), "name")
	case "aws_efs_file_system.arn", "aws_efs_access_point.file_system_arn":
		return arn("elasticfilesystem", "file-system/"+worstFileSystemID), nil
	case "aws_efs_access_point.arn":
		return arn("elasticfilesystem", "access-point/"+worstAccessPointID), nil
	case "aws_neptune_cluster.arn":
		return named(arn("rds", "cluster:%s"), "cluster_identifier")
	case "aws_neptune_cluster.cluster_resource_id":
		return worstNeptuneResourceID, nil
	case "aws_lambda_function.arn":
		return named(arn("lambda", "function:%s"), "function_name")
	}
	return "", fmt.Errorf("%s is in a policy, and policysize_test.go has no worst-case value for %s of %s: add one to worst.value", sym, attr, typ)
}

// sized is one policy's size, or a role's inline policies' together.
type sized struct {
	what        string
	size, limit int
}

// policySizes renders every policy document and adds up what each is used as: keyed by role
// (inline), policy (managed, trust) or resource.
func (w *worst) policySizes() (map[string]sized, error) {
	m := w.m
	docs, err := m.allInstances("data.aws_iam_policy_document")
	if err != nil {
		return nil, err
	}
	rendered := map[string]int{}
	for _, in := range docs {
		n, err := w.render(in)
		if err != nil {
			return nil, err
		}
		rendered[in.addr] = n
	}
	out := map[string]sized{}
	used := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(m.blocks)) {
		if strings.HasPrefix(key, "data.") {
			continue
		}
		b := m.blocks[key]
		for _, name := range slices.Sorted(maps.Keys(b.Body.Attributes)) {
			a := b.Body.Attributes[name]
			if !refersToPolicyDocument(a.Expr) {
				continue
			}
			typ := strings.SplitN(key, ".", 2)[0]
			use, ok := policyUses[typ+"."+name]
			if !ok {
				return nil, fmt.Errorf("%s.%s takes a policy document, and policysize_test.go knows no limit for it: add it to policyUses", key, name)
			}
			insts, err := m.instances(key)
			if err != nil {
				return nil, err
			}
			for _, in := range insts {
				v, _, err := m.arg(in, name)
				if err != nil {
					return nil, err
				}
				doc, attr, ok := m.ref(v)
				if !ok || !strings.HasPrefix(doc.addr, "data.aws_iam_policy_document.") || attr != "json" {
					return nil, fmt.Errorf("%s.%s is %#v: want the json of one aws_iam_policy_document, whose size the test can count", in.addr, name, v)
				}
				used[doc.addr] = true
				size := rendered[doc.addr]
				switch use.kind {
				case "inline":
					rv, _, err := m.arg(in, "role")
					if err != nil {
						return nil, err
					}
					role, _, ok := m.ref(rv)
					if !ok || !strings.HasPrefix(role.addr, "aws_iam_role.") {
						return nil, fmt.Errorf("%s.role is %#v: want a reference to an aws_iam_role", in.addr, rv)
					}
					k := "role " + role.addr
					s := out[k]
					s.what, s.limit = "role "+role.addr+": inline policies", use.limit
					s.size += size
					out[k] = s
				default:
					out[use.kind+" "+in.addr] = sized{use.kind + " policy " + in.addr + " (" + doc.addr + ")", size, use.limit}
				}
			}
		}
	}
	for addr := range rendered {
		if !used[addr] {
			return nil, fmt.Errorf("%s is used by no attribute policysize_test.go knows (policyUses): its limit is unchecked", addr)
		}
	}
	return out, nil
}

// refersToPolicyDocument: expr reads an aws_iam_policy_document (its json).
func refersToPolicyDocument(expr hcl.Expression) bool {
	for _, tr := range expr.Variables() {
		if tr.RootName() == "data" {
			if typ, err := attrStep(tr, 1); err == nil && typ == "aws_iam_policy_document" {
				return true
			}
		}
	}
	return false
}

// renderedStatement is one statement as the provider writes it (field order included).
type renderedStatement struct {
	Sid          string                    `json:",omitempty"`
	Effect       string                    `json:",omitempty"`
	Action       any                       `json:",omitempty"`
	NotAction    any                       `json:",omitempty"`
	Resource     any                       `json:",omitempty"`
	NotResource  any                       `json:",omitempty"`
	Principal    map[string]any            `json:",omitempty"`
	NotPrincipal map[string]any            `json:",omitempty"`
	Condition    map[string]map[string]any `json:",omitempty"`
}

type renderedDocument struct {
	Version   string              `json:",omitempty"`
	Statement []renderedStatement `json:",omitempty"`
}

// render returns the length of the JSON of the policy document in, in the worst case.
func (w *worst) render(in instance) (int, error) {
	m := w.m
	for name := range in.block.Body.Attributes {
		switch name {
		case "for_each", "count", "version":
		default:
			// source_policy_documents, override_policy_documents, policy_id: not rendered here.
			return 0, fmt.Errorf("%s: policysize_test.go does not render %q: teach render", in.addr, name)
		}
	}
	strs := func(b *hclsyntax.Body, name string) ([]string, error) {
		a := b.Attributes[name]
		if a == nil {
			return nil, nil
		}
		v, err := m.eval(a.Expr, &in)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", in.addr, name, err)
		}
		if !v.IsWhollyKnown() || v.IsNull() {
			return nil, fmt.Errorf("%s: %s is %#v, want known strings", in.addr, name, v)
		}
		var raw []string
		if v.Type() == cty.String {
			raw = []string{v.AsString()}
		} else {
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				s, err := str(e, in.addr+" "+name)
				if err != nil {
					return nil, err
				}
				raw = append(raw, s)
			}
		}
		out := make([]string, len(raw))
		for i, s := range raw {
			r, err := w.realize(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", in.addr, name, err)
			}
			out[i] = r
		}
		return out, nil
	}
	one := func(b *hclsyntax.Body, name string) (string, error) {
		l, err := strs(b, name)
		if err != nil || len(l) == 0 {
			return "", err
		}
		return l[0], nil
	}
	// set is a set argument as the provider writes it: none omitted, one a string, more a list.
	set := func(l []string) any {
		slices.Sort(l)
		l = slices.Compact(l)
		switch len(l) {
		case 0:
			return nil
		case 1:
			return l[0]
		}
		return l
	}
	statement := func(b *hclsyntax.Body) (renderedStatement, error) {
		st := renderedStatement{Effect: "Allow"}
		var err error
		if st.Sid, err = one(b, "sid"); err != nil {
			return st, err
		}
		if e, err := one(b, "effect"); err != nil {
			return st, err
		} else if e != "" {
			st.Effect = e
		}
		for name, dst := range map[string]*any{"actions": &st.Action, "not_actions": &st.NotAction, "resources": &st.Resource, "not_resources": &st.NotResource} {
			l, err := strs(b, name)
			if err != nil {
				return st, err
			}
			*dst = set(l)
		}
		for _, c := range b.Blocks {
			switch c.Type {
			case "condition":
				test, err := one(c.Body, "test")
				if err != nil {
					return st, err
				}
				variable, err := one(c.Body, "variable")
				if err != nil {
					return st, err
				}
				values, err := strs(c.Body, "values")
				if err != nil {
					return st, err
				}
				if st.Condition == nil {
					st.Condition = map[string]map[string]any{}
				}
				if st.Condition[test] == nil {
					st.Condition[test] = map[string]any{}
				}
				prev, _ := st.Condition[test][variable].([]string)
				st.Condition[test][variable] = append(prev, values...)
			case "principals", "not_principals":
				typ, err := one(c.Body, "type")
				if err != nil {
					return st, err
				}
				ids, err := strs(c.Body, "identifiers")
				if err != nil {
					return st, err
				}
				dst := &st.Principal
				if c.Type == "not_principals" {
					dst = &st.NotPrincipal
				}
				if *dst == nil {
					*dst = map[string]any{}
				}
				prev, _ := (*dst)[typ].([]string)
				(*dst)[typ] = append(prev, ids...)
			default:
				return st, fmt.Errorf("%s: policysize_test.go does not render a %s block in a statement: teach render", in.addr, c.Type)
			}
		}
		for _, byVar := range st.Condition {
			for k, v := range byVar {
				if l := v.([]string); len(l) == 1 {
					byVar[k] = l[0]
				}
			}
		}
		for _, p := range []map[string]any{st.Principal, st.NotPrincipal} {
			for k, v := range p {
				p[k] = set(v.([]string))
			}
		}
		return st, nil
	}
	doc := renderedDocument{Version: "2012-10-17"}
	if v, err := one(in.block.Body, "version"); err != nil {
		return 0, err
	} else if v != "" {
		doc.Version = v
	}
	for _, blk := range in.block.Body.Blocks {
		switch {
		case blk.Type == "statement":
			st, err := statement(blk.Body)
			if err != nil {
				return 0, err
			}
			doc.Statement = append(doc.Statement, st)
		case blk.Type == "dynamic" && len(blk.Labels) == 1 && blk.Labels[0] == "statement":
			v, err := m.eval(blk.Body.Attributes["for_each"].Expr, &in)
			if err != nil {
				return 0, fmt.Errorf("%s: dynamic statement: for_each: %w", in.addr, err)
			}
			if !v.IsWhollyKnown() {
				return 0, fmt.Errorf("%s: dynamic statement: for_each is unknown at plan time", in.addr)
			}
			if blk.Body.Attributes["iterator"] != nil || len(blk.Body.Blocks) != 1 || blk.Body.Blocks[0].Type != "content" {
				return 0, fmt.Errorf("%s: policysize_test.go renders a dynamic statement of one content block, without iterator: teach render", in.addr)
			}
			for range v.LengthInt() {
				st, err := statement(blk.Body.Blocks[0].Body)
				if err != nil {
					return 0, err
				}
				doc.Statement = append(doc.Statement, st)
			}
		default:
			return 0, fmt.Errorf("%s: policysize_test.go does not render a %s block: teach render", in.addr, blk.Type)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

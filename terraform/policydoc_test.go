package terraform

// policydoc_test.go: every list argument of the aws_iam_policy_document data sources (actions,
// resources, principals' identifiers, conditions' values) must be a list of strings. terraform
// validate cannot see a list of lists where a resource's attribute is involved (it is unknown
// then), but terraform plan refuses it ("Inappropriate value for attribute "values": element 0:
// string required"), so a deployment would stop at its first plan.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// policyListArgs are the arguments of a statement (and of its principals and condition blocks)
// that the provider takes as lists of strings.
var policyListArgs = map[string]bool{
	"actions": true, "not_actions": true, "resources": true, "not_resources": true, "identifiers": true, "values": true,
}

func TestPolicyDocumentListsAreListsOfStrings(t *testing.T) {
	m, err := loadModule(moduleDir(), testVars())
	if err != nil {
		t.Fatal(err)
	}
	checkPolicyDocuments(t, m)
}

func checkPolicyDocuments(t tb, m *module) {
	t.Helper()
	docs, err := m.allInstances("data.aws_iam_policy_document")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no aws_iam_policy_document in the configuration")
	}
	for _, in := range docs {
		var walk func(b *hclsyntax.Body, where string)
		walk = func(b *hclsyntax.Body, where string) {
			for name, a := range b.Attributes {
				if !policyListArgs[name] {
					continue
				}
				v, err := m.eval(a.Expr, &in)
				if err != nil {
					t.Errorf("%s: %s%s: %v", in.addr, where, name, err)
					continue
				}
				if err := listOfStrings(v); err != nil {
					t.Errorf("%s: %s%s: %v", in.addr, where, name, err)
				}
			}
			for _, blk := range b.Blocks {
				switch {
				case blk.Type == "dynamic" && len(blk.Labels) == 1:
					if fe := blk.Body.Attributes["for_each"]; fe != nil {
						v, err := m.eval(fe.Expr, &in)
						if err != nil {
							t.Errorf("%s: dynamic %s: for_each: %v", in.addr, blk.Labels[0], err)
							continue
						}
						if v.IsKnown() && !v.IsNull() && v.LengthInt() == 0 {
							continue // no such block in this instance
						}
					}
					for _, c := range blk.Body.Blocks {
						if c.Type == "content" {
							walk(c.Body, where+blk.Labels[0]+".")
						}
					}
				default:
					walk(blk.Body, where+blk.Type+".")
				}
			}
		}
		walk(in.block.Body, "")
	}
}

// listOfStrings says what is wrong with v as a list of strings (an unknown string is fine).
func listOfStrings(v cty.Value) error {
	if !v.IsKnown() || v.IsNull() {
		return nil
	}
	ty := v.Type()
	if !ty.IsListType() && !ty.IsSetType() && !ty.IsTupleType() {
		return fmt.Errorf("%s, want a list of strings", ty.FriendlyName())
	}
	var bad []string
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		_, e := it.Element()
		if e.Type() != cty.String && e.Type() != cty.DynamicPseudoType {
			bad = append(bad, fmt.Sprintf("element %d: string required, got %s", i, e.Type().FriendlyName()))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

package ssm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/params"
)

// GetByPathDescribed on SSM: the values of GetParametersByPath (10 a page) joined with the
// descriptions of DescribeParameters (50 a page), across several pages of both, so that Karma's
// provenance is readable with paged calls only. A value overwritten without a description keeps
// the description Karma wrote, and IsKarmaWrite then tells it apart.
func TestGetByPathDescribedPages(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	base := fmt.Sprintf("/karma-ssm-describe/%d", time.Now().UnixNano())
	const n = 61
	for i := range n {
		name := fmt.Sprintf("%s/t/c%02d/runtime", base, i)
		value := fmt.Sprintf(`{"i":%d}`, i)
		if _, err := s.Put(t.Context(), params.PutInput{Name: name, Value: value, Description: params.Provenance("test", value)}); err != nil {
			t.Fatal(err)
		}
	}
	tampered := base + "/t/c07/runtime"
	if _, err := s.Put(t.Context(), params.PutInput{Name: tampered, Value: `{"i":"someone"}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), params.PutInput{Name: base + "/outside/runtime", Value: "x", Description: "not karma"}); err != nil {
		t.Fatal(err)
	}
	ps, err := params.GetByPathDescribed(t.Context(), s, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != n+1 {
		t.Fatalf("%d parameters, want %d", len(ps), n+1)
	}
	for _, p := range ps {
		karma := params.IsKarmaWrite(p.Description, p.Value)
		switch p.Name {
		case tampered:
			if karma || p.Version != 2 || p.Description == "" {
				t.Errorf("%s: version %d, description %q, Karma's write %v; want version 2, Karma's old description, not Karma's", p.Name, p.Version, p.Description, karma)
			}
		case base + "/outside/runtime":
			if karma || p.Description != "not karma" {
				t.Errorf("%s: description %q, Karma's %v", p.Name, p.Description, karma)
			}
		default:
			if !karma || p.Version != 1 {
				t.Errorf("%s: description %q, version %d: want Karma's provenance for its value", p.Name, p.Description, p.Version)
			}
		}
	}
	metas, err := s.DescribeByPath(t.Context(), base+"/t/c07")
	if err != nil || len(metas) != 1 || metas[0].Name != tampered || metas[0].Value != "" {
		t.Errorf("DescribeByPath of one component: %+v, %v; want only its runtime's metadata", metas, err)
	}
}

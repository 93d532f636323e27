package params_test

import (
	"context"
	"testing"

	"github.com/usekarma/karma/shared/params"
)

// staleDescriber answers DescribeByPath with the metadata as it was before the last write of
// one parameter (written between the two reads), and keeps every version.
type staleDescriber struct {
	current   []params.Parameter
	metas     []params.Parameter
	history   map[string][]params.Parameter
	histories int
}

var (
	_ params.Describer = (*staleDescriber)(nil)
	_ params.Historian = (*staleDescriber)(nil)
)

func (s *staleDescriber) Get(context.Context, string) (params.Parameter, error) {
	return params.Parameter{}, params.ErrNotFound
}
func (s *staleDescriber) GetByPath(context.Context, string) ([]params.Parameter, error) {
	return append([]params.Parameter(nil), s.current...), nil
}
func (s *staleDescriber) Put(context.Context, params.PutInput) (params.PutResult, error) {
	return params.PutResult{}, nil
}
func (s *staleDescriber) Delete(context.Context, string) error { return nil }
func (s *staleDescriber) DescribeByPath(context.Context, string) ([]params.Parameter, error) {
	return s.metas, nil
}
func (s *staleDescriber) History(_ context.Context, name string) ([]params.Parameter, error) {
	s.histories++
	if h, ok := s.history[name]; ok {
		return h, nil
	}
	return nil, params.ErrNotFound
}

func TestGetByPathDescribedJoinsByVersion(t *testing.T) {
	t.Parallel()
	karma := params.Provenance("deployment=dep-1", "v2")
	s := &staleDescriber{
		current: []params.Parameter{
			{Name: "/iac/a/x/runtime", Value: "v1", Version: 1},
			{Name: "/iac/b/x/runtime", Value: "v2", Version: 2},  // written between the reads
			{Name: "/iac/c/x/runtime", Value: "new", Version: 1}, // created between the reads
		},
		metas: []params.Parameter{
			{Name: "/iac/a/x/runtime", Version: 1, Description: params.Provenance("x", "v1"), LastModifiedUser: "arn:karma"},
			{Name: "/iac/b/x/runtime", Version: 1, Description: "old", LastModifiedUser: "arn:someone"},
		},
		history: map[string][]params.Parameter{
			"/iac/b/x/runtime": {{Version: 1, Description: "old"}, {Version: 2, Description: karma, LastModifiedUser: "arn:karma"}},
		},
	}
	ps, err := params.GetByPathDescribed(t.Context(), s, "/iac")
	if err != nil {
		t.Fatal(err)
	}
	if !params.IsKarmaWrite(ps[0].Description, ps[0].Value) || ps[0].LastModifiedUser != "arn:karma" {
		t.Errorf("joined by name and version: %+v", ps[0])
	}
	if ps[1].Description != karma || ps[1].LastModifiedUser != "arn:karma" {
		t.Errorf("a version newer than its metadata is described from its history: %+v", ps[1])
	}
	if ps[2].Description != "" {
		t.Errorf("a parameter gone from the history keeps no description: %+v", ps[2])
	}
	if s.histories != 2 {
		t.Errorf("History called %d times, want 2 (only for the two parameters written between the reads)", s.histories)
	}
}

package app

import (
	"testing"

	"github.com/usekarma/karma/shared/config"
)

// Apply publishes in one transaction exactly when parameters and change sets share the state
// file — also when the configuration leaves a backend empty, which means the embedded default
// (a regression once took an empty state backend for "not embedded").
func TestAppliesAtomically(t *testing.T) {
	for _, tc := range []struct {
		name   string
		state  string
		params string
		want   bool
	}{
		{"the defaults", config.Embedded, config.Embedded, true},
		{"backends left empty", "", "", true},
		{"state left empty", "", config.Embedded, true},
		{"parameters on SSM", config.Embedded, config.AWS, false},
		{"state on DynamoDB", config.AWS, config.Embedded, false},
		{"no parameter store", config.Embedded, "none", false},
	} {
		cfg := config.Defaults()
		cfg.State, cfg.Params = tc.state, tc.params
		if got := New(cfg, Options{}).appliesAtomically(); got != tc.want {
			t.Errorf("%s (state %q, params %q): %v, want %v", tc.name, tc.state, tc.params, got, tc.want)
		}
	}
}

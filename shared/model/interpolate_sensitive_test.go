package model

import (
	"encoding/json"
	"slices"
	"testing"
)

// Values read from a sensitive runtime (a SecureString parameter) are substituted like any other,
// and every place that holds one is named by its JSON pointer, so that the value can be kept out
// of files; values from plain runtimes are not named.
func TestInterpolateMarksSensitiveValues(t *testing.T) {
	t.Parallel()
	runtimes := map[string]Runtime{
		"db/main":  {Values: map[string]any{"password": "s3cr3t", "port": json.Number("5432"), "creds": map[string]any{"user": "app"}}, Sensitive: true},
		"vpc/core": {Values: map[string]any{"vpc_id": "vpc-1"}},
	}
	cfg := `{"db": {"password": "${db/main.runtime.password}", "url": "postgres://app:${db/main.runtime.password}@h:${db/main.runtime.port}",
		"creds": "${db/main.runtime.creds}"}, "vpc": "${vpc/core.runtime.vpc_id}", "list": ["x", "${db/main.runtime.port}"],
		"a/b": {"~k": "${db/main.runtime.password}"}, "plain": "no reference"}`
	got, err := InterpolateRuntimes(json.RawMessage(cfg), func(ref string) (Runtime, error) { return runtimes[ref], nil })
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a/b":{"~k":"s3cr3t"},"db":{"creds":{"user":"app"},"password":"s3cr3t","url":"postgres://app:s3cr3t@h:5432"},"list":["x",5432],"plain":"no reference","vpc":"vpc-1"}`
	if string(got.Config) != want {
		t.Errorf("config %s\nwant   %s", got.Config, want)
	}
	wantPtrs := []string{"/a~1b/~0k", "/db/creds", "/db/password", "/db/url", "/list/1"}
	if !slices.Equal(got.Sensitive, wantPtrs) {
		t.Errorf("sensitive %q, want %q", got.Sensitive, wantPtrs)
	}

	plain, err := InterpolateRuntimes(json.RawMessage(`{"vpc": "${vpc/core.runtime.vpc_id}"}`), func(ref string) (Runtime, error) { return runtimes[ref], nil })
	if err != nil || len(plain.Sensitive) != 0 {
		t.Errorf("plain runtime: %+v, %v; want no sensitive value", plain, err)
	}
}

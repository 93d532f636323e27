package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoad(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "karma.json")
	os.WriteFile(file, []byte(`{"repo":"/srv/config","audit":"aws","audit_table":"t1"}`), 0o644)
	cases := []struct {
		name string
		env  map[string]string
		want func(Config) bool
		err  string
	}{
		{"defaults", nil, func(c Config) bool {
			return c.Repo == "." && c.StateDir == ".karma" && c.Queue == Embedded && !c.NeptuneIAM
		}, ""},
		{"file then env", map[string]string{"KARMA_CONFIG": file, "KARMA_AUDIT_TABLE": "t2"}, func(c Config) bool {
			return c.Repo == "/srv/config" && c.Audit == AWS && c.AuditTable == "t2"
		}, ""},
		{"one switch for all", map[string]string{"KARMA_BACKEND": "aws", "KARMA_NEPTUNE_ENDPOINT": "wss://n:8182/gremlin", "KARMA_NEPTUNE_IAM": "true"},
			func(c Config) bool { return c.Params == AWS && c.Graph == AWS && c.State == AWS && c.NeptuneIAM }, ""},
		{"ssm synonym", map[string]string{"KARMA_PARAMS_BACKEND": "ssm"}, func(c Config) bool { return c.Params == AWS }, ""},
		{"every problem at once", map[string]string{"KARMA_QUEUE_BACKEND": "kafka", "KARMA_AUDIT_BACKEND": "dynamo", "KARMA_GIT_WRITE": "force"}, nil,
			`queue backend "kafka": want embedded or aws` + "\n" + `audit backend "dynamo": want embedded or aws` + "\n" + `git write "force": want branch or change-branch or none`},
		{"unknown file key", map[string]string{"KARMA_CONFIG": writeTemp(t, `{"colour":"blue"}`)}, nil, `unknown field "colour"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Load(env(c.env))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !c.want(got) {
				t.Errorf("Load = %+v, %v", got, err)
			}
		})
	}
}

func writeTemp(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(s), 0o644)
	return p
}

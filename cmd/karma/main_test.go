package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

// karma runs the CLI in-process and returns its exit code, stdout and stderr.
func karma(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return karmaWith(t, &globals{}, args...)
}

// karmaWith runs the CLI with preset globals (test hooks).
func karmaWith(t *testing.T, g *globals, args ...string) (int, string, string) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outC, errC := make(chan string), make(chan string)
	go func() { var b bytes.Buffer; b.ReadFrom(ro); outC <- b.String() }()
	go func() { var b bytes.Buffer; b.ReadFrom(re); errC <- b.String() }()
	code := runWith(context.Background(), g, args)
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	return code, <-outC, <-errC
}

func examples(t *testing.T) []string {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--repo", repo, "--state-dir", t.TempDir()}
}

func TestExitCodes(t *testing.T) {
	ex := examples(t)
	cases := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"ok", append([]string{"graph", "build"}, ex...), 0, ""},
		{"unknown command", []string{"nope"}, 2, `unknown command "nope"`},
		{"unknown flag", append([]string{"graph", "build", "--colour"}, ex...), 2, "unknown flag: --colour"},
		{"bad format", append([]string{"graph", "export", "--format", "png"}, ex...), 2, `--format "png"`},
		{"bad backend", append([]string{"graph", "build", "--params-backend", "etcd"}, ex...), 2, `--params-backend "etcd"`},
		{"impact needs args", append([]string{"impact"}, ex...), 2, "requires at least 1 arg"},
		{"impact ambiguous", append([]string{"impact", "vpc/core"}, ex...), 2, "vpc/core is defined in dev/vpc/core, prod/vpc/core: choose one with --env"},
		{"impact unknown", append([]string{"impact", "vpc/nope", "--env", "prod"}, ex...), 2, "prod/vpc/nope: no such component"},
		{"missing repo", []string{"graph", "build", "--repo", "/nonexistent/repo", "--state-dir", t.TempDir()}, 1, "repository /nonexistent/repo"},
		{"unknown env", append([]string{"graph", "build", "--env", "qa"}, ex...), 1, `environment "qa": not found`},
		{"query refuses writes", []string{"graph", "query", "--endpoint", "ws://127.0.0.1:1/gremlin", "--gremlin", "g.V().drop()"}, 2, "refusing a query that may write"},
		{"publish wrong arity", append([]string{"params", "publish", "vpc"}, ex...), 2, "want no arguments or <type> <nickname>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := karma(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.err) {
				t.Errorf("exit %d stderr %q, want exit %d containing %q", code, stderr, c.code, c.err)
			}
		})
	}
}

func TestBuildInvalidRepoWritesNothing(t *testing.T) {
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "iac", "dev", "app", "a"), 0o755)
	os.WriteFile(filepath.Join(repo, "iac", "dev", "app", "a", "config.json"), []byte(`{"vpc_nickname":"ghost"}`), 0o644)
	state := t.TempDir()
	code, _, stderr := karma(t, "graph", "build", "--repo", repo, "--state-dir", state)
	if code != 1 || !strings.Contains(stderr, "iac/dev/app/a/config.json: error [missing-reference] at /vpc_nickname") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	code, out, _ := karma(t, "params", "publish", "--repo", repo, "--state-dir", state)
	if code != 1 || strings.Contains(out, "published /") {
		t.Errorf("publish of an invalid repository: exit %d, %s", code, out)
	}
}

func TestBuildPublishIdempotent(t *testing.T) {
	ex := examples(t)
	code, out, stderr := karma(t, append([]string{"graph", "build", "--json"}, ex...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Components != 12 || s.Written == nil || s.Written.ComponentsWritten != 12 || len(s.MissingRuntime) != 12 {
		t.Errorf("first build: %+v", s)
	}
	_, out, _ = karma(t, append([]string{"graph", "build", "--json"}, ex...)...)
	json.Unmarshal([]byte(out), &s)
	if s.Written.ComponentsWritten != 0 || s.Written.EdgesWritten != 0 || s.Written.Unchanged == 0 {
		t.Errorf("a rebuild with no change must write nothing: %+v", s.Written)
	}
	code, out, _ = karma(t, append([]string{"params", "publish", "--env", "prod"}, ex...)...)
	if code != 0 || !strings.Contains(out, "8 published, 0 unchanged") {
		t.Errorf("publish: %d %s", code, out)
	}
	_, out, _ = karma(t, append([]string{"params", "publish"}, ex...)...)
	if !strings.Contains(out, "4 published, 8 unchanged") {
		t.Errorf("republish: %s", out)
	}
	_, out, _ = karma(t, append([]string{"params", "list", "--env", "prod"}, ex...)...)
	if !strings.Contains(out, "/iac/vpc/core/config") || !strings.Contains(out, "v1") {
		t.Errorf("list: %s", out)
	}
	_, out, _ = karma(t, append([]string{"graph", "build", "--json", "--env", "prod"}, ex...)...)
	json.Unmarshal([]byte(out), &s)
	if len(s.Orphans) != 0 {
		t.Errorf("orphans: %v", s.Orphans)
	}
}

func TestImpactJSON(t *testing.T) {
	ex := examples(t)
	code, out, stderr := karma(t, append([]string{"impact", "vpc/core", "--env", "prod", "--keys", "vpc_id", "--json"}, ex...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var d graph.ImpactReport
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range d.Affected {
		got = append(got, a.ID)
	}
	if strings.Join(got, ",") != "prod/vpc/core,prod/ecs-cluster/core,prod/ecs-service/api" {
		t.Errorf("affected by vpc_id: %v", got)
	}
	last := d.Affected[len(d.Affected)-1]
	if len(last.Reason) != 2 || last.Wave != 2 {
		t.Errorf("reason chain of ecs-service/api: %+v", last)
	}
}

func TestExportFormats(t *testing.T) {
	ex := examples(t)
	for format, want := range map[string]string{"json": `"format": "karma.graph.v1"`, "dot": "digraph karma {", "mermaid": "flowchart LR"} {
		code, out, stderr := karma(t, append([]string{"graph", "export", "--format", format}, ex...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d %s %.200s", format, code, stderr, out)
		}
	}
}

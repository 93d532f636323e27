package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/params"
)

const moduleVars = `variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }
`

// A SecureString runtime consumed through ${...} is deployed with the exact value, and is copied
// nowhere Karma writes: not config.json or any other file of the workspace (Terraform's own state
// excepted), not the state file's messages, change sets, lineage, audit log or graph, not the
// command's output. With the real terraform.
func TestSecureStringNeverCopied(t *testing.T) {
	needTerraform(t)
	const secret = "pw-9f8e7d6c5b4a"
	repo := writeFiles(t, map[string]string{
		"iac/dev/db/main/config.json": `{"engine":"postgres"}`,
		"components/db/main.tf":       moduleVars,
		"components/app/main.tf": moduleVars + `
resource "terraform_data" "app" {
  input = var.config.db_password
}
output "password_sha256" { value = sha256(var.config.db_password) }
output "url_length" { value = length(var.config.url) }
output "name" { value = var.config.name }
`,
	})
	state := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "the database")
	putSecureRuntime(t, state, "/iac/db/main/runtime", `{"password":"`+secret+`"}`)
	url := "postgres://app:${db/main.runtime.password}@db/app"
	if err := os.MkdirAll(filepath.Join(repo, "iac/dev/app/a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "iac/dev/app/a/config.json"),
		[]byte(`{"name":"a","db_password":"${db/main.runtime.password}","url":"`+url+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Bob", "an app using the database")

	var output strings.Builder
	for _, args := range [][]string{{"ingest", "commit", "--auto-approve"}, {"apply", "--auto-approve"}, {"audit", "log"}, {"lineage", "dev/app/a", "--env", "dev"}} {
		code, out, errOut := karma(t, append(args, "--repo", repo, "--state-dir", state)...)
		output.WriteString(out + errOut)
		if code != 0 {
			t.Fatalf("karma %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}
	if !strings.Contains(output.String(), "1 applied, 0 skipped, 0 failed") {
		t.Errorf("dev/app/a was not applied:\n%s", output.String())
	}
	if strings.Contains(output.String(), secret) {
		t.Errorf("the command output holds the secret:\n%s", output.String())
	}
	// The runtime as published (`params get` shows password_sha256 redacted, as GET /components).
	out := getRuntime(t, state, "/iac/app/a/runtime")
	sum := sha256.Sum256([]byte(secret))
	if !strings.Contains(out, `"password_sha256":"`+hex.EncodeToString(sum[:])+`"`) || !strings.Contains(out, `"url_length":`+strconv.Itoa(len("postgres://app:"+secret+"@db/app"))) {
		t.Errorf("runtime %s: the module did not get the secret in place", out)
	}
	if rows := rowsHolding(t, filepath.Join(state, "karma.db"), secret, "params", "params_history"); len(rows) > 0 {
		t.Errorf("the state file holds the secret outside the parameter store: %v", rows)
	}
	if files := workFilesHolding(t, filepath.Join(state, "work"), secret); len(files) > 0 {
		t.Errorf("workspace files hold the secret: %v", files)
	}
}

// putSecureRuntime writes a SecureString parameter to the embedded store of env dev, as a
// deployment outside Karma would.
func putSecureRuntime(t *testing.T, state, name, value string) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := embedded.NewParamStore(db, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Put(context.Background(), params.PutInput{Name: name, Value: value, Type: params.TypeSecureString}); err != nil {
		t.Fatal(err)
	}
}

// getRuntime reads a parameter of the embedded store of env dev, as stored.
func getRuntime(t *testing.T, state, name string) string {
	t.Helper()
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := embedded.NewParamStore(db, "dev")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ps.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p.Value
}

// rowsHolding lists "table" for every row of every table of the SQLite file (but skip) that
// holds s in any column.
func rowsHolding(t *testing.T, path, s string, skip ...string) []string {
	t.Helper()
	db, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.SQL.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		tables.Scan(&n)
		names = append(names, n)
	}
	tables.Close()
	var out []string
	for _, table := range names {
		if contains(skip, table) {
			continue
		}
		rows, err := db.SQL.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if strings.Contains(string(v), s) {
					out = append(out, table)
				}
			}
		}
		rows.Close()
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// workFilesHolding lists the files under the workspaces holding s, Terraform's state and its
// .terraform folder excepted (Terraform keeps what resources hold there).
func workFilesHolding(t *testing.T, root, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == ".terraform":
			return filepath.SkipDir
		case d.IsDir() || strings.HasPrefix(d.Name(), "terraform.tfstate"):
			return nil
		}
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), s) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

package model

import (
	"strings"
	"testing"
	"testing/fstest"
)

// A config naming a member twice is refused with the file, line, column and pointer of the
// repeated name, whichever decoder reads it (the fast parser, or encoding/json past its depth),
// and however the name is written (escapes are the same name).
func TestDuplicateMemberIsAnError(t *testing.T) {
	t.Parallel()
	deep := ""
	for range maxParseDepth + 1 {
		deep += `{"x":`
	}
	deep += "1"
	for range maxParseDepth + 1 {
		deep += "}"
	}
	cases := []struct {
		name, data string
		line, col  int
		pointer    string
	}{
		{"top level", "{\n  \"size\": \"small\",\n  \"size\": \"large\"\n}", 3, 3, "/size"},
		{"nested, escaped", `{"tags": {"Owner": "a", "\u004fwner": "b"}}`, 1, 25, "/tags/Owner"},
		{"in an array", `{"l": [{}, {"a": 1, "a": 1}]}`, 1, 21, "/l/1/a"},
		{"past the fast parser's depth", `{"d": ` + deep + `, "d": 2}`, 1, len(`{"d": `+deep+`, `) + 1, "/d"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			obj, _, d := newParser().decode("iac/dev/app/api/config.json", []byte(c.data), false)
			if d == nil {
				t.Fatalf("accepted: %v", obj)
			}
			if d.Code != CodeInvalidJSON || d.File != "iac/dev/app/api/config.json" || d.Pointer != c.pointer || d.Line != c.line || d.Column != c.col {
				t.Errorf("got %s (line %d col %d pointer %q), want %s at %d:%d", d, d.Line, d.Column, d.Pointer, c.pointer, c.line, c.col)
			}
		})
	}
	// the same names in different objects are not repeated
	if _, _, d := newParser().decode("f.json", []byte(`{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}`), false); d != nil {
		t.Errorf("refused: %s", d)
	}
}

// A repository whose config repeats a member gives that error, and the component is broken
// (never deployed).
func TestDuplicateMemberInARepository(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"iac/dev/app/api/config.json": {Data: []byte(`{"instance_type": "t3.small", "instance_type": "m5.24xlarge"}`)},
	}
	repo, err := LoadFS(fsys, "repo", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := repo.Diagnostics.Errors()
	if len(errs) != 1 || errs[0].Pointer != "/instance_type" || errs[0].File != "iac/dev/app/api/config.json" {
		t.Fatalf("diagnostics %v", repo.Diagnostics)
	}
	if len(repo.Components) != 1 || !repo.Components[0].Broken {
		t.Errorf("components %+v", repo.Components)
	}
}

// karma.json and an account environment file naming a member twice are refused the same way:
// {"protected": true, "protected": false} must not read as an unprotected environment.
func TestDuplicateMemberInSettingsAndAccounts(t *testing.T) {
	t.Parallel()
	_, err := LoadFS(fstest.MapFS{
		"karma.json":                  {Data: []byte(`{"environments": {"prod": {"protected": true, "protected": false}}}`)},
		"iac/dev/app/api/config.json": {Data: []byte(`{}`)},
	}, "repo", LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "karma.json:1:") || !strings.Contains(err.Error(), "/environments/prod/protected") {
		t.Errorf("karma.json: %v", err)
	}
	repo, err := LoadFS(fstest.MapFS{
		"account_environments/prod.json": {Data: []byte(`{"environment": "prod", "environment": "dev"}`)},
		"iac/dev/app/api/config.json":    {Data: []byte(`{}`)},
	}, "repo", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := repo.Diagnostics.Errors()
	if len(errs) != 1 || errs[0].File != "account_environments/prod.json" || errs[0].Pointer != "/environment" {
		t.Errorf("account environment: %v", repo.Diagnostics)
	}
}

// A \u escape of half a surrogate pair is no character: encoding/json makes it U+FFFD, so two
// configs that differ ("\ud800", "\udfff") would be hashed, published and deployed as one, and
// neither as written. It is refused like an invalid UTF-8 byte, naming where it is; a whole pair
// is a character like any other.
func TestLoneSurrogateIsAnError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, data string
		line, col  int
		pointer    string
	}{
		{"high alone", `{"name": "\ud800"}`, 1, 11, "/name"},
		{"low first", "{\"tags\": {\"a\": [\"x\", \"y\\udfffz\"]}}", 1, 24, "/tags/a/1"},
		{"in a name", `{"\ud83dx": 1}`, 1, 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			obj, _, d := newParser().decode("iac/dev/app/api/config.json", []byte(c.data), false)
			if d == nil {
				t.Fatalf("accepted: %q", obj)
			}
			if d.Code != CodeInvalidJSON || d.Pointer != c.pointer || d.Line != c.line || d.Column != c.col || !strings.Contains(d.Message, "surrogate") {
				t.Errorf("got %s (line %d col %d pointer %q), want %q at %d:%d", d, d.Line, d.Column, d.Pointer, c.pointer, c.line, c.col)
			}
		})
	}
	obj, _, d := newParser().decode("f.json", []byte(`{"name": "\ud83d\ude00 \u00e9"}`), false)
	if d != nil || obj["name"] != "😀 é" {
		t.Errorf("a surrogate pair: %v, %v", obj, d)
	}
}

// Two environment folders whose names differ only by case are an error naming both, also when
// only one of them is loaded (resolve builds one environment at a time): on a case-insensitive
// file system they are one checkout folder and share each component's Terraform workspace.
func TestEnvironmentsDifferingOnlyByCase(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"iac/prod/vpc/core/config.json": {Data: []byte(`{"cidr": "10.0.0.0/16"}`)},
		"iac/Prod/vpc/core/config.json": {Data: []byte(`{"cidr": "10.9.0.0/16"}`)},
		"iac/qa/vpc/core/config.json":   {Data: []byte(`{"cidr": "10.1.0.0/16"}`)},
	}
	for _, env := range []string{"", "prod", "Prod"} {
		repo, err := LoadFS(fsys, "repo", LoadOptions{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		var found []string
		for _, d := range repo.Diagnostics.Errors() {
			if d.Code == CodeDuplicate && strings.Contains(d.Message, "environment defined twice") {
				found = append(found, d.File)
			}
		}
		if len(found) == 0 {
			t.Errorf("env %q: no error for iac/prod and iac/Prod (diagnostics: %v)", env, repo.Diagnostics)
		}
	}
	// An environment without a twin is not concerned by it.
	repo, err := LoadFS(fsys, "repo", LoadOptions{Env: "qa"})
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.Diagnostics.Errors(); len(errs) > 0 {
		t.Errorf("qa: %v", errs)
	}
}

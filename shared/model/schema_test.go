package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// A config of another commit checked against this repository's schema: what a rollback asks.
func TestValidateConfigAgainstTodaysSchema(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"iac/prod/vpc/core/config.json":     {Data: []byte(`{"az_count": 4}`)},
		"components/vpc/config.schema.json": {Data: []byte(`{"type": "object", "properties": {"az_count": {"type": "integer", "minimum": 4}}}`)},
	}
	repo, err := LoadFS(fsys, "today", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := repo.ValidateConfig("vpc", []byte(`{"az_count":5}`)); len(d) != 0 {
		t.Errorf("a valid config: %v", d)
	}
	d := repo.ValidateConfig("vpc", []byte(`{"az_count":3}`))
	if len(d) != 1 || d[0].Pointer != "/az_count" || !strings.Contains(d[0].Message, "minimum") {
		t.Errorf("az_count 3 against minimum 4: %v", d)
	}
	if d := repo.ValidateConfig("s3-bucket", []byte(`{"anything":true}`)); len(d) != 0 {
		t.Errorf("a type without a schema: %v", d)
	}
	if d := repo.ValidateConfig("vpc", []byte(`[1]`)); len(d) != 1 || !strings.Contains(d[0].Message, "not a JSON object") {
		t.Errorf("not an object: %v", d)
	}
}

// Two builds of the same schema bytes share one compiled schema; other bytes are compiled anew.
func TestSchemaCompiledOncePerContent(t *testing.T) {
	t.Parallel()
	schema := `{"$comment": "TestSchemaCompiledOncePerContent", "type": "object", "properties": {"az_count": {"type": "integer", "minimum": %d}}}`
	load := func(minimum int) *Repo {
		t.Helper()
		fsys := fstest.MapFS{
			"iac/prod/vpc/core/config.json":     {Data: []byte(`{"az_count": 4}`)},
			"components/vpc/config.schema.json": {Data: []byte(fmt.Sprintf(schema, minimum))},
		}
		repo, err := LoadFS(fsys, "commit", LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return repo
	}
	a, b, c := load(4), load(4), load(5)
	sa, sb, sc := a.schemaFor("vpc"), b.schemaFor("vpc"), c.schemaFor("vpc")
	if sa.err != nil || sb.err != nil || sc.err != nil || sa.schema == nil {
		t.Fatalf("schemas: %v %v %v", sa.err, sb.err, sc.err)
	}
	if sa.schema != sb.schema {
		t.Error("the same schema bytes were compiled twice")
	}
	if sa.schema == sc.schema {
		t.Error("a changed schema was not compiled again")
	}
	// Each repository still validates against its own schema.
	if d := b.ValidateConfig("vpc", []byte(`{"az_count":4}`)); len(d) != 0 {
		t.Errorf("minimum 4: %v", d)
	}
	if d := c.ValidateConfig("vpc", []byte(`{"az_count":4}`)); len(d) != 1 {
		t.Errorf("minimum 5: %v", d)
	}
	// Invalid JSON fails the same way every time.
	bad := fstest.MapFS{"iac/prod/vpc/core/config.json": {Data: []byte(`{}`)}, "components/vpc/config.schema.json": {Data: []byte(`{`)}}
	for range 2 {
		repo, err := LoadFS(bad, "commit", LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if e := repo.schemaFor("vpc"); e.err == nil || !strings.Contains(e.err.Error(), "invalid JSON") {
			t.Errorf("invalid schema: %v", e.err)
		}
	}
}

// A schema's $ref to another document — a file on the disk of the machine running Karma, by
// absolute path or relative to the schema — is refused with an error naming the schema and the
// reference, whatever the disk holds: what validates a commit is the commit's schema alone.
// A $ref within the schema and the JSON Schema metaschema ($schema) still work.
func TestSchemaRefsOutsideTheSchemaAreRefused(t *testing.T) {
	t.Parallel()
	disk := filepath.Join(t.TempDir(), "disk.schema.json")
	if err := os.WriteFile(disk, []byte(`{"type": "object", "required": ["from_disk"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// Where a relative $ref of components/app/config.schema.json was looked for: the disk's root.
	fsys := fstest.MapFS{
		"iac/dev/vpc/core/config.json":      {Data: []byte(`{"from_disk": 1}`)},
		"components/vpc/config.schema.json": {Data: []byte(`{"$comment": "TestSchemaRefsOutside disk", "$ref": "file://` + filepath.ToSlash(disk) + `"}`)},
		"iac/dev/app/api/config.json":       {Data: []byte(`{"size": 1}`)},
		"components/app/config.schema.json": {Data: []byte(`{"$comment": "TestSchemaRefsOutside sibling", "$ref": "common.schema.json"}`)},
		"components/app/common.schema.json": {Data: []byte(`{"type": "object"}`)},
		"iac/dev/db/main/config.json":       {Data: []byte(`{"size": "big"}`)},
		"components/db/config.schema.json": {Data: []byte(`{"$schema": "https://json-schema.org/draft/2020-12/schema",
			"$defs": {"size": {"type": "integer"}}, "properties": {"size": {"$ref": "#/$defs/size"}}}`)},
	}
	repo, err := LoadFS(fsys, "repo", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string]string{}
	for _, d := range repo.Diagnostics.Errors() {
		byFile[d.File] += d.String() + "\n"
	}
	for file, ref := range map[string]string{"iac/dev/vpc/core/config.json": filepath.ToSlash(disk), "iac/dev/app/api/config.json": "common.schema.json"} {
		got := byFile[file]
		if !strings.Contains(got, "may refer only within itself") || !strings.Contains(got, ref) {
			t.Errorf("%s: %q, want the schema's $ref to %s refused", file, got, ref)
		}
	}
	if got := byFile["iac/dev/db/main/config.json"]; !strings.Contains(got, "/size") || strings.Contains(got, "cannot be used") {
		t.Errorf("db/main against a schema with a local $ref: %q, want /size refused as not an integer", got)
	}
}

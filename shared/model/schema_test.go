package model

import (
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

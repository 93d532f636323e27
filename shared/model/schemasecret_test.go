package model

import (
	"strings"
	"testing"
	"testing/fstest"
)

// A schema's error quotes the value it refuses ("'hunter2' does not match pattern …"): under a
// secret-named key that is a password, and the diagnostic is shown by GET /components, karma
// graph build and a rejected change set (and recorded in change.resolved). The value is left
// out of the message; the pointer and the rule it breaks stay.
func TestSchemaDiagnosticsDoNotQuoteSecrets(t *testing.T) {
	t.Parallel()
	const secret, nested, plain = "hunter2pw", "tok-3141", "10.0.0.0/8"
	// secrets in name/value entries (ECS, Kubernetes), in a script, in JSON held in a string
	const entry, script, defs = "entry-pw-1", "script-tok-2", "defs-pw-3"
	more := `, "env": [{"name": "DB_PASSWORD", "value": "` + entry + `"}], "user_data": "export API_TOKEN=` + script + `",` +
		` "container_definitions": "[{\"name\":\"DB_PWD\",\"value\":\"` + defs + `\"}]"}`
	fsys := fstest.MapFS{
		"iac/prod/db/main/config.json": {Data: []byte(`{"master_password": "` + secret + `", "credentials": {"api": "` + nested + `"}, "cidr": "` + plain + `", "pin_token": 31337, "url": "postgres://app:` + secret + `@db"` + more)},
		"components/db/config.schema.json": {Data: []byte(`{"type": "object", "properties": {
			"master_password": {"type": "string", "pattern": "^[A-Z]"},
			"credentials": {"type": "object", "properties": {"api": {"type": "string", "pattern": "^key-"}}},
			"cidr": {"type": "string", "pattern": "/16$"},
			"pin_token": {"type": "integer", "maximum": 9999},
			"url": {"type": "string", "pattern": "^mysql:"},
			"env": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string", "pattern": "^[A-Z]"}}}},
			"user_data": {"type": "string", "pattern": "^#!"},
			"container_definitions": {"type": "string", "pattern": "^x"}}}`)},
	}
	repo, err := LoadFS(fsys, "today", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, ds Diagnostics) {
		t.Helper()
		got := map[string]string{}
		for _, d := range ds {
			if d.Code == CodeSchema {
				got[d.Pointer] = d.Message
			}
		}
		for ptr, want := range map[string]string{"/master_password": "does not match pattern '^[A-Z]'", "/credentials/api": "does not match pattern '^key-'",
			"/cidr": "'" + plain + "' does not match pattern", "/pin_token": "the value breaks the schema's /properties/pin_token/maximum",
			"/url": "'postgres://app:(sensitive value)@db' does not match pattern", "/env/0/value": "'(sensitive value)' does not match pattern",
			"/user_data":             "'export API_TOKEN=(sensitive value)' does not match pattern",
			"/container_definitions": `(sensitive value)"}]' does not match pattern`} {
			if !strings.Contains(got[ptr], want) {
				t.Errorf("%s: %s: %q, want it to say %q", what, ptr, got[ptr], want)
			}
		}
		for ptr, msg := range got {
			if strings.Contains(msg, secret) || strings.Contains(msg, nested) || strings.Contains(msg, "31337") ||
				strings.Contains(msg, entry) || strings.Contains(msg, script) || strings.Contains(msg, defs) {
				t.Errorf("%s: %s: %q quotes a secret", what, ptr, msg)
			}
		}
	}
	check("the repository", repo.Diagnostics)
	check("ValidateConfig (a rollback)", repo.ValidateConfig("db", []byte(`{"master_password":"`+secret+`","credentials":{"api":"`+nested+`"},"cidr":"`+plain+`","pin_token":31337,"url":"postgres://app:`+secret+`@db"`+more)))
}

package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// A sealed record hashes as ComputeHash hashes the record the logs keep (in UTC, an empty Body
// as none), and is not changed by what the caller does to its Body afterwards.
func TestSealHashesAsTheStoredRecord(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("CET", 3600)
	body := []byte(`{"id": "m-1",  "type":"change.requested"}`)
	r := audit.Record{MessageID: "m-1", Type: "change.requested", Version: 2, Env: "prod", Chain: "prod/vpc/core",
		Component: "prod/vpc/core", CorrelationID: "m-1", ActorKind: "user", Actor: "ada",
		OccurredAt: time.Date(2026, 3, 14, 16, 9, 26, 535, zone), Body: body, Seq: 7, PrevHash: "x", Hash: "y"}
	s, err := audit.Seal(r)
	if err != nil {
		t.Fatal(err)
	}
	kept := s.Record()
	if kept.OccurredAt.Location() != time.UTC || !kept.OccurredAt.Equal(r.OccurredAt) {
		t.Errorf("OccurredAt sealed as %v, want %v in UTC", kept.OccurredAt, r.OccurredAt)
	}
	if kept.Seq != 0 || kept.PrevHash != "" || kept.Hash != "" {
		t.Errorf("sealed record keeps seq %d, prev %q, hash %q; want none", kept.Seq, kept.PrevHash, kept.Hash)
	}
	want := kept.ComputeHash("prev")
	if got := s.Hash("prev"); got != want {
		t.Errorf("Hash %s, ComputeHash %s", got, want)
	}
	if s.Hash("") == s.Hash("prev") {
		t.Error("the hash does not depend on the previous hash")
	}
	utc := r
	utc.OccurredAt = r.OccurredAt.UTC()
	if got := utc.ComputeHash("prev"); got != want {
		t.Errorf("the record in UTC hashes %s, its seal %s", got, want)
	}
	copy(body, `{"id": "m-2"`) // the caller's buffer reused
	if got := s.Hash("prev"); got != want || !strings.Contains(string(s.Record().Body), `"m-1"`) {
		t.Errorf("changing the caller's Body changed the sealed record: %s, hash %s", s.Record().Body, got)
	}

	r.Body = json.RawMessage{}
	empty, err := audit.Seal(r)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Record().Body != nil {
		t.Errorf("an empty Body sealed as %q, want none", empty.Record().Body)
	}
	none := utc
	none.Body = nil
	if got, want := empty.Hash("prev"), none.ComputeHash("prev"); got != want {
		t.Errorf("an empty Body hashes %s, none %s", got, want)
	}

	r.Body = json.RawMessage(`{"id":`)
	if _, err := audit.Seal(r); err == nil || !strings.Contains(err.Error(), `"m-1"`) || !strings.Contains(err.Error(), "Body is not valid JSON") {
		t.Errorf("sealing a Body that is not JSON: %v, want an error naming the record", err)
	}
}

package api

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/usekarma/karma/shared/audit"
)

// A caller who hangs up once a write has started does not leave it half-done: the approval is
// stored, its plans released and its audit entry written; a refused request's security entry is
// written too.
func TestWritesOutliveTheCallerWhoHangsUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()

	gone, hangUp := context.WithCancel(context.Background())
	hangUp()
	var dec Decision
	h.callContext(gone, "POST", "/changes/"+url.PathEscape(created.ChangeID)+"/approve", "approver", nil).want(http.StatusOK).decode(&dec)
	if !dec.Change.Approved || dec.Released != 1 {
		t.Errorf("approval of a caller who hung up: %+v", dec)
	}
	recs, err := h.audit.Query(t.Context(), audit.Query{Correlation: created.ChangeID})
	if err != nil {
		t.Fatal(err)
	}
	approved := 0
	for _, r := range recs {
		if r.Type == EntryApproved {
			approved++
		}
	}
	if approved != 1 {
		t.Errorf("%d %s entries for the approval, want 1", approved, EntryApproved)
	}

	h.callContext(gone, "GET", "/graph?env=prod", "", nil).want(http.StatusUnauthorized)
	recs, err = h.audit.Query(t.Context(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range recs {
		if r.Type == EntryUnauthenticated {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d %s entries for the refused request, want 1", refused, EntryUnauthenticated)
	}
}

package params_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/usekarma/karma/shared/params"
)

// A provenance too long for a description (a publish of a component whose file path is near
// Parameter Store's name limit) is cut in what it describes, never in the value's hash: the
// write is still recognised as Karma's (IsKarmaWrite), and the description stays valid UTF-8
// within the limit.
func TestProvenanceKeepsTheHashWhenCut(t *testing.T) {
	t.Parallel()
	value := `{"size":1}`
	what := "commit=" + strings.Repeat("a", 40) + " file=iac/dev/" + strings.Repeat("é", 600) + "/config.json"
	d := params.Provenance(what, value)
	if len(d) > params.MaxDescription || !utf8.ValidString(d) {
		t.Errorf("description of %d bytes (valid UTF-8: %v), want at most %d", len(d), utf8.ValidString(d), params.MaxDescription)
	}
	if !params.IsKarmaWrite(d, value) {
		t.Errorf("Karma's own write is not recognised: %q", d[len(d)-40:])
	}
	if h, ok := params.ProvenanceHash(d); !ok || h != params.ValueHash(value) {
		t.Errorf("hash %q, %v; want %s", h, ok, params.ValueHash(value))
	}
}

package embedded

import (
	"errors"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
)

// The embedded store refuses what SSM refuses, with the shared typed error, which the pipeline's
// one classifier treats as permanent: a value too large is dead-lettered or fails a deployment,
// never retried.
func TestOversizedValueIsPermanent(t *testing.T) {
	t.Parallel()
	s := newStore(t, openTemp(t), account)
	name := "/iac/app/api/runtime"
	for _, in := range []params.PutInput{
		{Name: name, Value: strings.Repeat("v", params.MaxValueBytes+1)},
		{Name: name, Value: strings.Repeat("v", params.StandardTierLimit+1), Tier: params.TierStandard},
	} {
		_, err := s.Put(t.Context(), in)
		var ie *params.InvalidError
		if !errors.As(err, &ie) || ie.Name != name {
			t.Fatalf("Put of %d bytes (tier %q): %v, want a *params.InvalidError naming %s", len(in.Value), in.Tier, err, name)
		}
		if got := pipeline.Classify(err); got != pipeline.DeadLetter {
			t.Errorf("Classify(%v) = %v, want dead-letter (permanent)", err, got)
		}
	}
	if _, err := s.Get(t.Context(), name); !errors.Is(err, params.ErrNotFound) {
		t.Errorf("after refused writes: Get = %v, want not found (nothing written)", err)
	}
}

// Parameter values are UTF-8 text (SSM's API is JSON): invalid UTF-8 is refused, naming the
// offset, instead of being stored and read back as U+FFFD.
func TestInvalidUTF8ValueRefused(t *testing.T) {
	t.Parallel()
	s := newStore(t, openTemp(t), account)
	_, err := s.Put(t.Context(), params.PutInput{Name: "/iac/app/api/config", Value: "{\"name\":\"caf\xe9\"}"})
	var ie *params.InvalidError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "invalid UTF-8 at byte offset 12") {
		t.Fatalf("Put: %v, want a *params.InvalidError naming the offset", err)
	}
}

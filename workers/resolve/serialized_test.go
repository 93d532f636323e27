package resolve_test

import (
	"context"
	"slices"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
)

// finishedCounter is the embedded store saying whether the handler runs in one serializable
// transaction as told, and counting the ordering's second look (Finished).
type finishedCounter struct {
	*embedded.ChangeSets
	serialized bool
	looks      int
}

func (s *finishedCounter) Serialized(context.Context) bool { return s.serialized }

func (s *finishedCounter) Finished(ctx context.Context, ids []string) ([]string, error) {
	s.looks++
	return s.ChangeSets.Finished(ctx, ids)
}

// A change set queued behind another is looked at again after its creation, in case what it
// waits behind finished in between; not when the store says the look and the creation are one
// serializable transaction (a joined stage on the embedded file), where nothing comes between.
func TestQueuedChangeSetLooksAgainUnlessSerialized(t *testing.T) {
	for _, serialized := range []bool{false, true} {
		s := newStage(t, wt.ExamplesDir, nil)
		st := &finishedCounter{ChangeSets: s.cs, serialized: serialized}
		s.w.ChangeSets = st
		vpc := message.ComponentRef{Type: "vpc", Nickname: "core"}
		s.handle(t, runtimeDetected(t, 80, "prod", vpc, []string{"vpc_id"}))
		s.handle(t, runtimeDetected(t, 81, "prod", vpc, []string{"vpc_id"}))
		if behind, started := s.state(t, wt.FixedID(81)); !slices.Equal(behind, []string{wt.FixedID(80)}) || started {
			t.Fatalf("serialized %v: B queued behind %v (started %v), want A", serialized, behind, started)
		}
		if want := map[bool]int{false: 1, true: 0}[serialized]; st.looks != want {
			t.Errorf("serialized %v: looked again %d times, want %d", serialized, st.looks, want)
		}
	}
}

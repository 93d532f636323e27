package embedded_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
)

// BenchmarkChangeSetsUnfinished: the question resolve asks for every change set it creates and
// every one that finishes (changeset.Unfinished), for one component, on a file holding 1,000
// finished change sets and 10 unfinished ones for each of 50 components, each queued behind the
// one before it, documents of about 2.5 KB: BenchmarkPipeline's shape (its change sets' documents
// are 2.2-2.5 KB, and each of these questions returns 9.5 change sets on average).
func BenchmarkChangeSetsUnfinished(b *testing.B) {
	ctx := b.Context()
	db := queueTestDB(b, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	config := json.RawMessage(fmt.Sprintf(`{"bucket": %q}`, strings.Repeat("x", 2000)))
	n := 0
	create := func(component, state string, behind []string) string {
		n++
		id := fmt.Sprintf("cs-%05d", n)
		cs := &changeset.ChangeSet{ID: id, Env: "prod", CreatedAt: t0.Add(time.Duration(n) * time.Second), QueuedBehind: behind,
			Nodes: map[string]*changeset.Node{component: {Component: component, State: state, Config: config}}}
		if _, err := s.Create(ctx, cs); err != nil {
			b.Fatal(err)
		}
		return id
	}
	for i := range 1000 {
		create(fmt.Sprintf("prod/site/s-%02d", i%50), changeset.Applied, nil)
	}
	for range 10 {
		for c := range 50 {
			component := fmt.Sprintf("prod/site/s-%02d", c)
			list, err := s.Unfinished(ctx, "prod", []string{component})
			if err != nil {
				b.Fatal(err)
			}
			var behind []string
			if len(list) > 0 {
				behind = []string{list[0].ID}
			}
			create(component, changeset.Pending, behind)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		list, err := s.Unfinished(ctx, "prod", []string{fmt.Sprintf("prod/site/s-%02d", i%50)})
		if err != nil || len(list) != 10 || len(list[0].QueuedBehind) != 1 {
			b.Fatalf("%+v, %v", list, err)
		}
	}
}

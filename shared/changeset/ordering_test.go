package changeset

import (
	"slices"
	"testing"
	"time"
)

func TestAhead(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	unfinished := []Queued{ // newest first, as Unfinished lists them
		{ID: "e", CreatedAt: at(4), Components: []string{"x"}},
		{ID: "d", CreatedAt: at(3), Components: []string{"y", "z"}},
		{ID: "c2", CreatedAt: at(2), Components: []string{"y"}},
		{ID: "c1", CreatedAt: at(2), Components: []string{"y"}}, // same time: the id orders
		{ID: "b", CreatedAt: at(1), Components: []string{"x", "y"}},
		{ID: "a", CreatedAt: at(0), Components: []string{"x"}},
	}
	for _, c := range []struct {
		name    string
		self    string
		created time.Time
		want    []string
	}{
		{"a new change set: the latest per component", "new", time.Time{}, []string{"d", "e"}},
		{"itself left out", "e", time.Time{}, []string{"b", "d"}},
		{"an existing one: only those before it", "c2", at(2), []string{"b", "c1"}},
		{"the first has nothing ahead", "a", at(0), nil},
	} {
		if got := Ahead(unfinished, c.self, c.created); !slices.Equal(got, c.want) {
			t.Errorf("%s: Ahead = %v, want %v", c.name, got, c.want)
		}
	}
	// A change set listed without its components (a store that did not say) is ahead.
	if got := Ahead([]Queued{{ID: "p", CreatedAt: at(0)}, {ID: "q", CreatedAt: at(1), Components: []string{"x"}}}, "new", time.Time{}); !slices.Equal(got, []string{"p", "q"}) {
		t.Errorf("without components: %v, want [p q]", got)
	}
}

func TestRequeue(t *testing.T) {
	cs := &ChangeSet{ID: "c", QueuedBehind: []string{"a", "b"}, Nodes: map[string]*Node{}}
	if cs.Requeue([]string{"other"}, []string{"z"}, "x") || !slices.Equal(cs.QueuedBehind, []string{"a", "b"}) {
		t.Fatalf("not queued behind what is gone: changed to %v", cs.QueuedBehind)
	}
	if cs.Requeue([]string{"b"}, []string{"a", "x", "c"}, "b") || !slices.Equal(cs.QueuedBehind, []string{"a", "x"}) {
		t.Fatalf("b gone, a and x ahead: queued behind %v, want [a x]", cs.QueuedBehind)
	}
	if !cs.Requeue([]string{"a", "x"}, nil, "a") || !cs.Started || len(cs.QueuedBehind) != 0 || cs.StartedBy != "a" {
		t.Fatalf("all gone, nothing ahead: started %v by %q, queued behind %v", cs.Started, cs.StartedBy, cs.QueuedBehind)
	}
	if cs.Requeue([]string{"a"}, []string{"y"}, "a") || len(cs.QueuedBehind) != 0 {
		t.Fatalf("a started change set is not queued again: %v", cs.QueuedBehind)
	}
}

func TestEndedUnrun(t *testing.T) {
	for _, c := range []struct {
		cs   ChangeSet
		want bool
	}{
		{ChangeSet{}, false},
		{ChangeSet{SupersededBy: "later"}, true},
		{ChangeSet{RejectedBy: "linus"}, true},
		{ChangeSet{ExpiredAt: time.Now()}, true},
	} {
		if got := c.cs.EndedUnrun(); got != c.want {
			t.Errorf("%+v: EndedUnrun = %v, want %v", c.cs, got, c.want)
		}
	}
}

// A store without an index of unfinished change sets: Unfinished lists and filters, and says
// which of the components asked about each one has.
func TestUnfinishedByListing(t *testing.T) {
	ctx := t.Context()
	m := &memStore{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		id, env, state string
		components     []string
	}{{"a", "prod", Pending, []string{"x", "y"}}, {"b", "prod", Applied, []string{"x"}}, {"c", "dev", Pending, []string{"x"}}, {"d", "prod", Pending, []string{"z"}}} {
		cs := &ChangeSet{ID: c.id, Env: c.env, CreatedAt: t0.Add(time.Duration(i) * time.Minute), Nodes: map[string]*Node{}}
		for _, comp := range c.components {
			cs.Nodes[comp] = &Node{Component: comp, State: c.state}
		}
		if _, err := m.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	list, err := Unfinished(ctx, m, "prod", []string{"y", "x", "w"})
	if err != nil || len(list) != 1 || list[0].ID != "a" || !slices.Equal(list[0].Components, []string{"x", "y"}) {
		t.Fatalf("Unfinished(prod, [y x w]) = %+v, %v; want a with [x y]", list, err)
	}
	if list, err = Unfinished(ctx, m, "prod", nil); err != nil || len(list) != 2 || list[0].Components != nil {
		t.Fatalf("Unfinished(prod, nil) = %+v, %v; want a and d, without components", list, err)
	}
}

func TestOrderAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cs := &ChangeSet{CreatedAt: t0}
	cs.OrderAfter([]Queued{{ID: "a", CreatedAt: t0.Add(-time.Second)}})
	if !cs.CreatedAt.Equal(t0) {
		t.Errorf("after an earlier one: %v, want %v unchanged", cs.CreatedAt, t0)
	}
	cs.OrderAfter([]Queued{{ID: "b", CreatedAt: t0.Add(2 * time.Second)}, {ID: "c", CreatedAt: t0}})
	if want := t0.Add(2*time.Second + time.Nanosecond); !cs.CreatedAt.Equal(want) {
		t.Errorf("after one stamped later by another clock: %v, want %v", cs.CreatedAt, want)
	}
}

package governance

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Identities maps a person (a short name of the repository's choosing) to every name Karma may
// see them by:
//
//	"identities": {
//	  "ada": ["Ada Lovelace <ada@example.com>", "arn:aws:iam::210987654321:user/ada", "ada-release"]
//	}
//
// Karma sees people by four kinds of names, and compares them so:
//
//   - a Git author or requester, "Name <email>": by the email alone, case-insensitively (the
//     display name is free text: "Ada" and "Ada Lovelace" with one email are one person);
//   - an email address: the same, so "ada@example.com" equals "Ada <ada@example.com>";
//   - an IAM ARN (the API's callers on AWS): exactly — ARNs are case-sensitive, and an assumed
//     role's session ARN (arn:aws:sts::…:assumed-role/Role/session) is not its role's;
//   - anything else — a CLI user (KARMA_ACTOR or the OS user), an API token's name — by the
//     name, case-insensitively.
//
// Two names are the same person when they compare equal, or when the identity map lists both
// under one person (the person's own key counts as one of their names). Without a map, a CLI
// user "ada" and a Git author "Ada <ada@example.com>" are different people: a repository that
// protects an environment should map every approver's names. Same is what approval uses; what
// a name is compared as is Canonical.
type Identities map[string][]string

// Canonical is the form a name is compared in, without the identity map: "email:<lower-case
// address>", the ARN as it is, or "name:<lower-case name>".
func Canonical(raw string) string {
	s := strings.TrimSpace(raw)
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		if email := strings.TrimSpace(s[i+1 : len(s)-1]); strings.Contains(email, "@") {
			return "email:" + strings.ToLower(email)
		}
	}
	switch {
	case strings.HasPrefix(s, "arn:"):
		return s
	case strings.Contains(s, "@") && !strings.ContainsAny(s, " <>"):
		return "email:" + strings.ToLower(s)
	}
	return "name:" + strings.ToLower(s)
}

// Person is who raw names: "person:<key>" when the map lists it, else Canonical(raw). One
// karma.json never lists a name for two people (problems), but the rules a change set keeps may
// join two maps (the operator's floor and the commit's, Stricter): persons that share a name are
// then one person, named by the first of their keys — so that a commit's map cannot split a
// person of the floor's in two (an author approving their own change under another of their
// names, or one person's two approvals counted as two people's).
func (ids Identities) Person(raw string) string {
	c := Canonical(raw)
	persons := ids.persons()
	names := make(map[string][]string, len(persons)) // person -> canonical names
	for _, p := range persons {
		names[p] = append(names[p], Canonical(p))
		for _, alias := range ids[p] {
			names[p] = append(names[p], Canonical(alias))
		}
	}
	// The persons reachable from c through shared names.
	seen, found := map[string]bool{c: true}, map[string]bool{}
	for queue := []string{c}; len(queue) > 0; queue = queue[1:] {
		for _, p := range persons {
			if found[p] || !slices.Contains(names[p], queue[0]) {
				continue
			}
			found[p] = true
			for _, n := range names[p] {
				if !seen[n] {
					seen[n] = true
					queue = append(queue, n)
				}
			}
		}
	}
	for _, p := range persons { // sorted: the first key found
		if found[p] {
			return "person:" + p
		}
	}
	return c
}

// Same reports whether a and b name the same person. An empty name is nobody.
func (ids Identities) Same(a, b string) bool {
	if strings.TrimSpace(a) == "" || strings.TrimSpace(b) == "" {
		return false
	}
	return ids.Person(a) == ids.Person(b)
}

func (ids Identities) persons() []string {
	out := make([]string, 0, len(ids))
	for p := range ids {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// problems: empty names, and a name listed for two people (which would make them one).
func (ids Identities) problems(ptr string) []Problem {
	var out []Problem
	owner := map[string]string{}
	claim := func(p, name, at string) {
		c := Canonical(name)
		if prev, ok := owner[c]; ok && prev != p {
			out = append(out, Problem{Pointer: at, Message: fmt.Sprintf("%q names %s, already a name of %s: one name, one person", name, p, prev)})
			return
		}
		owner[c] = p
	}
	for _, p := range ids.persons() {
		pp := ptr + "/" + pointerEscape(p)
		if strings.TrimSpace(p) == "" {
			out = append(out, Problem{Pointer: pp, Message: "a person needs a name"})
			continue
		}
		claim(p, p, pp)
		for i, alias := range ids[p] {
			at := pp + "/" + strconv.Itoa(i)
			if strings.TrimSpace(alias) == "" {
				out = append(out, Problem{Pointer: at, Message: "want a name (Git author, email, IAM ARN, CLI user or token name), found an empty string"})
				continue
			}
			claim(p, alias, at)
		}
	}
	return out
}

package main

import (
	"strings"
	"testing"
)

// Through a server (--server), flags the API cannot honour are refused (exit 2), each named,
// before any request: apply --as (the approval is the token caller's) and --json (the reply is
// not printed as JSON), rollback --as and --auto-approve (the server never approves a rollback).
// They were ignored: an approval recorded as someone other than --as named, a rollback that
// --auto-approve was to apply left waiting, with exit 0.
func TestRemoteRefusesFlagsItCannotHonour(t *testing.T) {
	t.Setenv("KARMA_SERVER", "http://127.0.0.1:1") // never called: the refusal comes first
	g := &globals{}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"apply", "019cebab-0000-7000-8000-000000000000", "--as", "alice"}, []string{"--as"}},
		{[]string{"apply", "019cebab-0000-7000-8000-000000000000", "--json"}, []string{"--json"}},
		{[]string{"rollback", "dep-0123456789abcdef", "--auto-approve"}, []string{"--auto-approve"}},
		{[]string{"rollback", "dep-0123456789abcdef", "--as", "alice", "--auto-approve"}, []string{"--as", "--auto-approve"}},
	} {
		code, _, errOut := karmaWith(t, g, c.args...)
		ok := code == 2
		for _, w := range c.want {
			ok = ok && strings.Contains(errOut, "--server: "+w+":")
		}
		if !ok {
			t.Errorf("%v --server: exit %d %s; want exit 2 refusing %v", c.args, code, errOut, c.want)
		}
	}
	// What the API does honour still goes to the server (here: none listening, exit 1).
	if code, _, errOut := karmaWith(t, g, "apply", "019cebab-0000-7000-8000-000000000000", "--auto-approve"); code != 1 || strings.Contains(errOut, "--server: --") {
		t.Errorf("apply --auto-approve --server: exit %d %s; want the request made (exit 1: no server)", code, errOut)
	}
}

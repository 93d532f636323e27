package model

import (
	"regexp"
	"testing"
)

func TestNamesMatchTheirRegularExpressions(t *testing.T) {
	typeRe := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	nicknameRe := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	cases := []string{"", "a", "A", "0", "-", "_", ".", "vpc", "route53-zone", "s3_bucket", "Vpc", "vpc.", "a-", "-a", "_a",
		".a", "a.b", "core-000001", "my.site_v2-x", "a b", "a/b", "é", "a\x00", "a\n", "ZZ9", "a..b", "~", "a~"}
	for c := byte(0); c < 128; c++ {
		cases = append(cases, string(c), "a"+string(c))
	}
	for _, s := range cases {
		if got, want := validType(s), typeRe.MatchString(s); got != want {
			t.Errorf("validType(%q) = %v, want %v", s, got, want)
		}
		if got, want := validNickname(s), nicknameRe.MatchString(s); got != want {
			t.Errorf("validNickname(%q) = %v, want %v", s, got, want)
		}
	}
}

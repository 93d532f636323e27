package gitrepo_test

import (
	"testing"

	"github.com/usekarma/karma/shared/gitrepo"
)

func TestSignatureOf(t *testing.T) {
	for who, want := range map[string]gitrepo.Signature{
		"Ada Lovelace <ada@example.com>":     {Name: "Ada Lovelace", Email: "ada@example.com"},
		"ada@example.com":                    {Name: "ada@example.com", Email: "ada@example.com"},
		"Ada Lovelace":                       {Name: "Ada Lovelace", Email: "Ada.Lovelace@karma.invalid"},
		"arn:aws:iam::123456789012:user/ada": {Name: "arn:aws:iam::123456789012:user/ada", Email: "arn:aws:iam::123456789012:user/ada@karma.invalid"},
		`"Lovelace, Ada" <ada@example.com>`:  {Name: "Lovelace, Ada", Email: "ada@example.com"},
	} {
		got, err := gitrepo.SignatureOf(who)
		if err != nil || got != want {
			t.Errorf("SignatureOf(%q) = %+v, %v; want %+v", who, got, err, want)
		}
	}
}

// A requester becomes a commit's author line ("author Name <email> time zone") and a line of
// its message: what would break that line or add lines is refused, not written.
func TestSignatureOfRefusesWhatCorruptsTheAuthorLine(t *testing.T) {
	for _, who := range []string{
		"",
		"   ",
		"Eve <e@x.org>\nKarma-Change: forged",
		"Eve\nSigned-off-by: Mallory <m@x.org>",
		"Eve\r",
		"Eve\x00",
		"Eve <e@x.org> <m@y.org>",
		"Eve <e@x.org",
		"Eve > Mallory",
		"=?utf-8?q?Eve=0AKarma-Change=3A_forged?= <e@x.org>",
		"<e@x.org>x",
	} {
		if got, err := gitrepo.SignatureOf(who); err == nil {
			t.Errorf("SignatureOf(%q) = %+v, want an error", who, got)
		}
	}
}

func TestRemoteFullName(t *testing.T) {
	for url, want := range map[string]string{
		"https://github.com/acme/config.git":           "acme/config",
		"https://github.com/acme/config":               "acme/config",
		"https://gitlab.example/group/sub/config.git/": "group/sub/config",
		"ssh://git@github.com/acme/config.git":         "acme/config",
		"git@github.com:acme/config.git":               "acme/config",
		"/srv/git/config.git":                          "",
		"file:///srv/git/config.git":                   "",
		"./config":                                     "",
		"":                                             "",
	} {
		if got := (gitrepo.Remote{URL: url}).FullName(); got != want {
			t.Errorf("FullName(%q) = %q, want %q", url, got, want)
		}
	}
}

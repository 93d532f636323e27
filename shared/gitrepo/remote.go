package gitrepo

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Remote says where a config repository lives and how to reach it. Credentials are read from
// files (a token file, a deploy key), never from the URL, and never appear in String, errors,
// logs, the audit log or the lineage.
type Remote struct {
	// URL is https://host/owner/repo.git, ssh://git@host/owner/repo.git, git@host:owner/repo.git,
	// file:///path/repo.git or a local path.
	URL string `json:"url"`
	// TokenFile holds an HTTPS access token, sent as the password of basic auth.
	TokenFile string `json:"token_file,omitempty"`
	// TokenUser is the basic-auth user sent with the token (default "x-access-token", which
	// GitHub, Gitea and Forgejo accept; GitLab wants "oauth2").
	TokenUser string `json:"token_user,omitempty"`
	// SSHKeyFile is a deploy key (PEM/OpenSSH private key) for ssh URLs.
	SSHKeyFile string `json:"ssh_key_file,omitempty"`
	// KnownHostsFile pins the SSH host keys (default: the user's ~/.ssh/known_hosts).
	KnownHostsFile string `json:"known_hosts_file,omitempty"`
	// Branch is the deploy branch (default "main"): the commit a change without one of its own
	// (a parameter written outside Karma) is built from, and where propose-change pushes.
	Branch string `json:"branch,omitempty"`

	token string // read from TokenFile by Validate
}

// DefaultBranch is the deploy branch when none is configured.
const DefaultBranch = "main"

// ErrCredentialsInURL refuses URLs carrying a password or token: they would end up in logs.
var ErrCredentialsInURL = errors.New("gitrepo: credentials in the repository URL")

// String is the URL without any user information: safe for errors and logs.
func (r Remote) String() string { return redactURL(r.URL) }

// BranchOrDefault is the deploy branch.
func (r Remote) BranchOrDefault() string {
	if r.Branch == "" {
		return DefaultBranch
	}
	return r.Branch
}

// FullName is the repository's path on its host as push webhooks name it ("owner/name",
// GitLab's "group/subgroup/name"): the URL's path without a leading "/" or a ".git" suffix.
// "" for a local path or file:// URL, which no provider names.
func (r Remote) FullName() string {
	var path string
	switch {
	case r.URL == "" || r.isLocal():
		return ""
	case r.isSSH() && !strings.HasPrefix(r.URL, "ssh://"): // user@host:path
		path = r.URL[strings.Index(r.URL, ":")+1:]
	default:
		u, err := url.Parse(r.URL)
		if err != nil {
			return ""
		}
		path = u.Path
	}
	return strings.TrimSuffix(strings.Trim(path, "/"), ".git")
}

// isLocal reports whether the URL is a path or file:// URL (no credentials apply).
func (r Remote) isLocal() bool {
	return strings.HasPrefix(r.URL, "file://") || strings.HasPrefix(r.URL, "/") || strings.HasPrefix(r.URL, ".")
}

func (r Remote) isSSH() bool {
	if strings.HasPrefix(r.URL, "ssh://") {
		return true
	}
	// scp-like syntax: user@host:path
	at, colon := strings.Index(r.URL, "@"), strings.Index(r.URL, ":")
	return !strings.Contains(r.URL, "://") && at > 0 && colon > at
}

// Validate checks the remote and reads its credential files; every problem is reported at once.
func (r *Remote) Validate() error {
	var errs []error
	if r.URL == "" {
		errs = append(errs, errors.New("repository url: not set"))
	}
	if u, err := url.Parse(r.URL); err == nil && u.User != nil {
		_, hasPassword := u.User.Password()
		if hasPassword || u.Scheme == "https" || u.Scheme == "http" {
			errs = append(errs, fmt.Errorf("repository url %s: %w: put the token in token_file", redactURL(r.URL), ErrCredentialsInURL))
		}
	}
	switch {
	case r.isLocal():
		if r.TokenFile != "" || r.SSHKeyFile != "" {
			errs = append(errs, fmt.Errorf("repository %s: a local path takes no token_file or ssh_key_file", r))
		}
	case r.isSSH():
		if r.TokenFile != "" {
			errs = append(errs, fmt.Errorf("repository %s: token_file is for https URLs; use ssh_key_file", r))
		}
	case strings.HasPrefix(r.URL, "https://") || strings.HasPrefix(r.URL, "http://"):
		if r.SSHKeyFile != "" {
			errs = append(errs, fmt.Errorf("repository %s: ssh_key_file is for ssh URLs; use token_file", r))
		}
	default:
		if r.URL != "" {
			errs = append(errs, fmt.Errorf("repository url %s: want https://, ssh://, git@host:path, file:// or a local path", r))
		}
	}
	if r.TokenFile != "" {
		data, err := os.ReadFile(r.TokenFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("repository %s: token_file: %w", r, err))
		case strings.TrimSpace(string(data)) == "":
			errs = append(errs, fmt.Errorf("repository %s: token_file %s is empty", r, r.TokenFile))
		default:
			r.token = strings.TrimSpace(string(data))
		}
	}
	if r.SSHKeyFile != "" {
		if _, err := os.Stat(r.SSHKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("repository %s: ssh_key_file: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// auth is the transport authentication of the remote (nil: none).
func (r Remote) auth() (transport.AuthMethod, error) {
	switch {
	case r.token != "":
		user := r.TokenUser
		if user == "" {
			user = "x-access-token"
		}
		return &http.BasicAuth{Username: user, Password: r.token}, nil
	case r.SSHKeyFile != "":
		user := "git"
		if ep, err := transport.NewEndpoint(r.URL); err == nil && ep.User != "" {
			user = ep.User
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, r.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("repository %s: ssh_key_file %s: %w", r, r.SSHKeyFile, err)
		}
		if r.KnownHostsFile != "" {
			cb, err := knownhosts.New(r.KnownHostsFile)
			if err != nil {
				return nil, fmt.Errorf("repository %s: known_hosts_file: %w", r, err)
			}
			keys.HostKeyCallback = cb
		} else {
			cb, err := gitssh.NewKnownHostsCallback()
			if err != nil {
				return nil, fmt.Errorf("repository %s: no known_hosts_file and none usable in ~/.ssh: %w", r, err)
			}
			keys.HostKeyCallback = cb
		}
		return keys, nil
	}
	return nil, nil
}

// redactURL drops passwords, and any user of an http(s) URL (a token may be written as the
// user), and the query from a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return raw
	}
	if u.User != nil {
		if u.Scheme == "http" || u.Scheme == "https" {
			u.User = nil
		} else {
			u.User = url.User(u.User.Username())
		}
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

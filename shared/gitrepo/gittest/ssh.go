package gittest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer serves bare repositories over SSH to one deploy key: an "exec" of git-upload-pack
// or git-receive-pack '<path>' runs the git binary on that path.
type SSHServer struct {
	Addr           string // 127.0.0.1:port
	KeyFile        string // the deploy key (OpenSSH private key) the server accepts
	KnownHostsFile string // pins the server's host key
	ln             net.Listener
	wg             sync.WaitGroup
}

// NewSSHServer starts the server; it stops when the test ends.
func NewSSHServer(t testing.TB) *SSHServer {
	t.Helper()
	Need(t)
	dir := t.TempDir()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(key.Marshal(), allowed.Marshal()) {
			return &ssh.Permissions{}, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{Addr: ln.Addr().String(), ln: ln, KeyFile: filepath.Join(dir, "deploy_key"), KnownHostsFile: filepath.Join(dir, "known_hosts")}
	block, err := ssh.MarshalPrivateKey(clientPriv, "karma deploy key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostSigner.PublicKey())
	if err := os.WriteFile(s.KnownHostsFile, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go s.serve(cfg)
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// RepoURL is the ssh:// URL of the bare repository at the absolute path bare.
func (s *SSHServer) RepoURL(bare string) string {
	return "ssh://git@" + s.Addr + filepath.ToSlash(bare)
}

func (s *SSHServer) serve(cfg *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_, chans, reqs, err := ssh.NewServerConn(c, cfg)
			if err != nil {
				return
			}
			go ssh.DiscardRequests(reqs)
			for nc := range chans {
				if nc.ChannelType() != "session" {
					nc.Reject(ssh.UnknownChannelType, "session only")
					continue
				}
				ch, chReqs, err := nc.Accept()
				if err != nil {
					return
				}
				s.session(ch, chReqs)
			}
		}()
	}
}

// session answers one exec request of git-upload-pack or git-receive-pack.
func (s *SSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(req.Type == "env", nil)
			continue
		}
		n := binary.BigEndian.Uint32(req.Payload)
		command := string(req.Payload[4 : 4+n])
		prog, arg, _ := strings.Cut(command, " ")
		arg = strings.Trim(arg, "'")
		if prog != "git-upload-pack" && prog != "git-receive-pack" {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command("git", strings.TrimPrefix(prog, "git-"), arg)
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return
		}
		// Copy the client's input without waiting for it to end: the client keeps the channel
		// open until it has read everything the command writes.
		go func() { io.Copy(stdin, ch); stdin.Close() }()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
			io.WriteString(ch.Stderr(), err.Error())
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

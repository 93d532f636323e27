package api

import "net/http"

// GET /me — who the caller is and the scopes it holds, so that a client (the web page) offers
// only what the caller may do: an approval needs the approve scope.

func (s *server) getMe(w http.ResponseWriter, _ *http.Request, c Caller) error {
	if c.Scopes == nil {
		c.Scopes = []Scope{}
	}
	return writeJSON(w, http.StatusOK, c)
}

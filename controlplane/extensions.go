package controlplane

import (
	"net/http"

	"github.com/open-telemetry/opamp-go/protobufs"
)

// Seams for the features layered on the reconciler. Each is called with the
// session lock held from reconcileLocked (offers) or from Accept.

// offerConnectionSettings adds ConnectionSettingsOffers to msg when the
// agent's offered settings differ from its desired ones.
func (s *Service) offerConnectionSettings(ss *session, msg *protobufs.ServerToAgent) bool {
	return false
}

// authenticate admits or refuses an agent connection (enrollment token,
// client certificate); the returned value is kept in connState.
func (s *Service) authenticate(r *http.Request) (any, error) { return nil, nil }

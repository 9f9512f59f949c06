package steward

import (
	"context"
	"time"
)

// AgentBinding records which enrollment token first admitted an agent's
// instance uid. From then on the uid belongs to that enrollment: a holder
// of another enrollment token, or of none, cannot speak for it. (A uid
// named by a client certificate is bound to the certificate by the
// certificate itself; see AgentCertificate.)
type AgentBinding struct {
	AgentID           InstanceUID `json:"agent_id"`
	EnrollmentTokenID string      `json:"enrollment_token_id"`
	CreatedAt         time.Time   `json:"created_at"`
}

// AgentBindingStore keeps agent bindings. Stores implement it in addition
// to Store (store/sqlite and store/postgres do). Errors as for Store.
type AgentBindingStore interface {
	// BindAgent records b unless the agent is bound already, atomically
	// (the first writer wins, also across replicas). It returns the
	// binding in force and whether it is b (created).
	BindAgent(ctx context.Context, b *AgentBinding) (bound *AgentBinding, created bool, err error)
	// AgentBinding returns the agent's binding; ENOTFOUND if it has none.
	AgentBinding(ctx context.Context, id InstanceUID) (*AgentBinding, error)
	// UnbindAgent removes the agent's binding; ENOTFOUND if it has none.
	UnbindAgent(ctx context.Context, id InstanceUID) error
}

// AgentCredentialsStore is implemented by a store that keeps both
// certificates (CredentialStore) and bindings (AgentBindingStore): it
// reads what admitting an agent's connection needs in one statement, so
// both are of the same moment and a reconnect pays one read, not two.
type AgentCredentialsStore interface {
	// AgentCredentials returns the agent's certificates, newest first
	// (CredentialStore.Certificates), and its binding, nil when it has
	// none.
	AgentCredentials(ctx context.Context, id InstanceUID) ([]*AgentCertificate, *AgentBinding, error)
}

package controlplane

// Seams for the features layered on the reconciler live in their own
// files: packages.go, connection.go and auth.go.

package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// The conditional approval workflow: a request is validated, a decision step routes it
// by amount to automatic approval, a manager, or a manager and finance, and a deferred
// convergence step finalizes whichever approvals were created. The handlers are keyed by
// the callables of tasker-core's conditional_approval_rust template, so that template
// runs unchanged.

// approvalCallable is the callable prefix of tasker-core's approval handlers.
const approvalCallable = "tasker_example_rs::step_handlers::conditional_approval_rust::"

// Routing thresholds: below smallAmount approval is automatic, below largeAmount a
// manager approves, from largeAmount on a manager and finance both do.
const (
	smallAmount = 1000
	largeAmount = 5000
)

func approvalHandlers() Registry {
	return Registry{
		approvalCallable + "ValidateRequestHandler":  validateRequest,
		approvalCallable + "RoutingDecisionHandler":  routingDecision,
		approvalCallable + "AutoApproveHandler":      approver("automatic", "system"),
		approvalCallable + "ManagerApprovalHandler":  approver("manager", "manager_rust_example"),
		approvalCallable + "FinanceReviewHandler":    approver("finance", "finance_rust_example"),
		approvalCallable + "FinalizeApprovalHandler": finalizeApproval,
	}
}

// approvalRequest is the task context of an approval.
type approvalRequest struct {
	Amount    *json.Number `json:"amount"`
	Requester *string      `json:"requester"`
	Purpose   *string      `json:"purpose"`
}

func validationError(code, msg string) *StepError {
	return &StepError{Message: msg, ErrorType: "ValidationError", ErrorCode: code}
}

// readApproval reads and checks the request: a positive integer amount, and a requester
// and purpose that are not blank.
func readApproval(doc json.RawMessage) (req approvalRequest, amount *big.Int, serr *StepError) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if dec.Decode(&req) != nil || req.Amount == nil {
		return req, nil, validationError("MISSING_AMOUNT", "context.amount is required")
	}
	amount, ok := integerValue(req.Amount.String())
	if !ok || amount.Sign() <= 0 {
		return req, nil, validationError("INVALID_AMOUNT", fmt.Sprintf("context.amount must be a positive integer, got %s", req.Amount))
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"requester", req.Requester}, {"purpose", req.Purpose}} {
		if f.v == nil {
			return req, nil, validationError("MISSING_"+strings.ToUpper(f.name), "context."+f.name+" is required")
		}
		if strings.TrimSpace(*f.v) == "" {
			return req, nil, validationError("EMPTY_"+strings.ToUpper(f.name), "context."+f.name+" must not be blank")
		}
	}
	return req, amount, nil
}

func validateRequest(_ context.Context, in StepInput) (any, error) {
	req, amount, serr := readApproval(in.Context)
	if serr != nil {
		return nil, serr
	}
	return map[string]any{"amount": json.Number(amount.String()), "requester": *req.Requester,
		"purpose": *req.Purpose, "validated_at": time.Now().UTC()}, nil
}

// routingDecision chooses the approvals by amount and returns them as its decision
// outcome.
func routingDecision(_ context.Context, in StepInput) (any, error) {
	_, amount, serr := readApproval(in.Context)
	if serr != nil {
		serr.ErrorType = "DecisionError"
		return nil, serr
	}
	route, steps, why := "dual_approval", []string{"manager_approval", "finance_review"},
		fmt.Sprintf("amount %s is at least %d: a manager and finance approve", amount, largeAmount)
	switch {
	case amount.Cmp(big.NewInt(smallAmount)) < 0:
		route, steps, why = "auto_approval", []string{"auto_approve"}, fmt.Sprintf("amount %s is below %d: approved automatically", amount, smallAmount)
	case amount.Cmp(big.NewInt(largeAmount)) < 0:
		route, steps, why = "manager_only", []string{"manager_approval"}, fmt.Sprintf("amount %s is below %d: a manager approves", amount, largeAmount)
	}
	return map[string]any{"route_type": route, "reasoning": why, "amount": json.Number(amount.String()),
		DecisionKey: DecisionOutcome{Type: OutcomeCreateSteps, StepNames: steps}}, nil
}

// approver returns the handler of one approval branch.
func approver(kind, by string) Handler {
	return func(_ context.Context, in StepInput) (any, error) {
		_, amount, serr := readApproval(in.Context)
		if serr != nil {
			return nil, serr
		}
		return map[string]any{"approved": true, "approval_type": kind, "approved_amount": json.Number(amount.String()),
			"approved_by": by, "approved_at": time.Now().UTC(), "notes": kind + " approval of " + amount.String()}, nil
	}
}

// finalizeApproval joins the approvals that were created and names the path taken.
func finalizeApproval(_ context.Context, in StepInput) (any, error) {
	req, amount, serr := readApproval(in.Context)
	if serr != nil {
		return nil, serr
	}
	var chain, by []string
	for _, branch := range []string{"auto_approve", "manager_approval", "finance_review"} {
		raw, ok := in.Dependencies[branch]
		if !ok {
			continue
		}
		var r struct {
			Type string `json:"approval_type"`
			By   string `json:"approved_by"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, validationError("INVALID_DEPENDENCY_RESULT", fmt.Sprintf("%s result: %v", branch, err))
		}
		chain, by = append(chain, r.Type), append(by, r.By)
	}
	path := "unknown"
	switch {
	case slices.Equal(chain, []string{"automatic"}):
		path = "auto"
	case slices.Equal(chain, []string{"manager"}):
		path = "manager_only"
	case slices.Equal(chain, []string{"manager", "finance"}):
		path = "dual_approval"
	}
	return map[string]any{"approved": true, "final_amount": json.Number(amount.String()), "requester": *req.Requester,
		"purpose": *req.Purpose, "approval_chain": chain, "approved_by": by, "finalized_at": time.Now().UTC(),
		"approval_path": path}, nil
}

package workflow

import (
	"context"
	"fmt"
	"time"
)

// The error scenarios of tasker-core's test_errors templates (success_only,
// retryable_error_only, permanent_error_only): one step that succeeds, one that always
// fails retryably, one that always fails permanently. Keyed by those templates'
// callables, so the templates run unchanged.
func errorScenarioHandlers() Registry {
	return Registry{
		"ErrorScenarios::SuccessHandler": func(context.Context, StepInput) (any, error) {
			return map[string]any{"status": "success", "message": "step completed successfully",
				"timestamp": time.Now().UTC()}, nil
		},
		"ErrorScenarios::RetryableErrorHandler": func(_ context.Context, in StepInput) (any, error) {
			return nil, &StepError{Message: fmt.Sprintf("payment service timed out (attempt %d)", in.Attempt),
				ErrorType: "RetryableError", ErrorCode: "SERVICE_TIMEOUT", Retryable: true}
		},
		"ErrorScenarios::PermanentErrorHandler": func(context.Context, StepInput) (any, error) {
			return nil, &StepError{Message: "invalid payment method: test_invalid_card", ErrorType: "PermanentError",
				ErrorCode: "INVALID_PAYMENT_METHOD"}
		},
	}
}

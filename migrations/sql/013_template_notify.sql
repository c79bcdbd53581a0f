-- Every insert or update of a named task (a template registered, or registered again)
-- notifies tasker_template_registered with its named_task_uuid, delivered when the
-- transaction commits, so that an orchestrator's template cache drops what it holds. A
-- trigger rather than the registering code: any writer of the table notifies, workers
-- built before this migration and hand-written SQL included. The channel's name is
-- messaging.TemplateRegisteredChannel in the Go code.
CREATE OR REPLACE FUNCTION tasker.notify_template_registered()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tasker_template_registered', NEW.named_task_uuid::text);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS named_tasks_notify_registered ON tasker.named_tasks;
CREATE TRIGGER named_tasks_notify_registered
    AFTER INSERT OR UPDATE ON tasker.named_tasks
    FOR EACH ROW EXECUTE FUNCTION tasker.notify_template_registered();

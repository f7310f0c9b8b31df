-- 0012 · integration plane: webhook secret rotation.
-- When an endpoint's webhook secret changes, the old one stays valid for 24 hours (data-model
-- 3.14: previousWebhookSecret / previousWebhookSecretExpiresAt), so senders can switch over.
-- Done in the database so every writer (API, CLI, SQL) gets the same rule.

CREATE OR REPLACE FUNCTION cityos_rotate_webhook_secret() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.webhook_secret_enc IS NOT NULL
       AND NEW.webhook_secret_enc IS DISTINCT FROM OLD.webhook_secret_enc THEN
        NEW.previous_webhook_secret_enc := OLD.webhook_secret_enc;
        NEW.previous_webhook_secret_expires_at := now() + interval '24 hours';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER integration_endpoints_rotate_webhook_secret
    BEFORE UPDATE OF webhook_secret_enc ON integration_endpoints
    FOR EACH ROW EXECUTE FUNCTION cityos_rotate_webhook_secret();

-- The key lookup kept a generic plan made while conversation_keys was small and scanned the
-- account's keys (1.4 s of a 5.5 s, 5,000-message batch run); custom plans use the primary key.
ALTER FUNCTION mp_thread_keys(bigint, text[], text, boolean, timestamptz, int)
	SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION mp_thread_message(bigint, text[], int) SET plan_cache_mode = force_custom_plan;

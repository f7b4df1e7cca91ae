"""What a user runs: text-to-video, one-shot tune + edit, the cascade."""

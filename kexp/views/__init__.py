"""What a person looks at: the public drawing helpers and render_run (plots: the one way in from
outside this folder), a run's figures, the forces figure, and the run's page with everything
known about each filter (filter_facts, filter_cards), all drawn from one replay of the run's
files (run_replay). numpy and matplotlib only."""

"""The Flask client portal example; run it with: scripts/example flask"""

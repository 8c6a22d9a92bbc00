"""Tools that check the program and what it deploys: offline (mocks, render, check, validate,
schemas, CRD CEL rules, the policy rules and their CrossGuard pack) and on a live cluster
(verify). They import the builders and settings; nothing in the program imports them."""

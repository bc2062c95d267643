"""Opt-in speed paths, each chosen once at construction where it supports the policy and checked by one
differential test against the reference path: the Clip-PPO minibatch gradient in closed form (:mod:`.fused`,
``tests/test_fused.py``). (Numpy acting lives with the policies, the flat fused Adam in :mod:`proxrl.optim`.)"""

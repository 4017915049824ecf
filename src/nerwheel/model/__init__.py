"""nerwheel.model"""
